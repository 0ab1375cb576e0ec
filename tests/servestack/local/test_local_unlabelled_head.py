"""A head left running by a servestack from before the worker-group labels: `serve` refuses
to reuse it, saying why, instead of deploying replicas no node admits (they would wait for
ever). A real head on free ports, started as the older servestack did (no `--labels`)."""

from __future__ import annotations

import pytest

from servestack.local.auth import ensure_token
from servestack.local.dashboard import DashboardClient
from servestack.local.head import head_environment, start_head
from tests.servestack.local.private_cli import private_cli

pytestmark = pytest.mark.ray


def test_serve_refuses_a_running_head_without_the_label_its_deployments_select() -> None:
    with private_cli("ssu-") as cli:
        head_env = head_environment(cli.env)
        start_head(cli.ports, 2, head_env, DashboardClient(cli.ports.dashboard_url,
                                                           ensure_token(head_env)))
        result = cli.servestack("serve", "--timeout", "60", timeout=300)
        assert result.returncode == 1, result.stderr
        assert "has no node labelled servestack.io/worker-group=cpu" in result.stderr
        assert "`servestack stop`" in result.stderr and "Traceback" not in result.stderr
        status = cli.servestack("status", timeout=120)
        assert "but Serve is not" in status.stdout, status.stdout + status.stderr
