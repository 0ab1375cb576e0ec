"""Names other systems read: the only place each label, port name, taint effect and config key
is spelled. Everything else imports them, so a rename is one edit and a test can hunt strays.
"""

from __future__ import annotations

from typing import Final

KUBECONFIG_KEY: Final = "kubeconfig"
"""Secret config key holding the kubeconfig: `pulumi config set --secret servestack:kubeconfig`."""
