"""A head left running by a servestack from before the worker-group labels: `serve` refuses
to reuse it, saying why, instead of deploying replicas no node admits (they would wait for
ever). A real head on free ports, started as the older servestack did (no `--labels`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from infra.config import REPO_ROOT
from servestack.local.auth import ensure_token
from servestack.local.dashboard import DashboardClient
from servestack.local.head import LocalPorts, head_environment, start_head
from tests.servestack.local.test_local_stack_e2e import free_ports

pytestmark = pytest.mark.ray


def test_serve_refuses_a_running_head_without_the_label_its_deployments_select() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ssu-", dir="/tmp"))
    gcs, dashboard, http, metrics = free_ports(4)
    env = {**os.environ, "RAY_TMPDIR": str(workdir),
           "RAY_AUTH_TOKEN_PATH": str(workdir / "auth_token")}
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    ports = LocalPorts(http=http, gcs=gcs, dashboard=dashboard, metrics=metrics)
    ports_args = ["--ray-port", str(gcs), "--dashboard-port", str(dashboard)]
    head_env = head_environment(env)
    try:
        start_head(ports, 2, head_env, DashboardClient(ports.dashboard_url,
                                                       ensure_token(head_env)))
        result = subprocess.run(
            [sys.executable, "-c", "from servestack.cli import main; main()", "serve",
             *ports_args, "--http-port", str(http), "--metrics-port", str(metrics),
             "--timeout", "60"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 1, result.stderr
        assert "has no node labelled servestack.io/worker-group=cpu" in result.stderr
        assert "`servestack stop`" in result.stderr and "Traceback" not in result.stderr
        status = subprocess.run(
            [sys.executable, "-c", "from servestack.cli import main; main()", "status",
             "--dashboard-port", str(dashboard)],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert "but Serve is not" in status.stdout, status.stdout + status.stderr
    finally:
        subprocess.run(
            [sys.executable, "-c", "from servestack.cli import main; main()", "stop",
             *ports_args],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
