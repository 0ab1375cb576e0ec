"""Kubernetes' own rules for names and keys, written once (apimachinery's validation.go).

Stdlib only: the app specs, the stack config and the policy pack all check with these.
"""

from __future__ import annotations

import re
from typing import Final

DNS_1123_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1123 label: namespaces, most object names, node pool names."""
QUALIFIED_NAME: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
"""An optional DNS-subdomain prefix and a name: label keys, taint keys, resource names."""


def is_qualified_name(value: str) -> bool:
    return bool(QUALIFIED_NAME.match(value))
