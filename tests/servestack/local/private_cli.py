"""`servestack` run as a user runs it, on a head of its own beside other engineers' Rays.

Free ports reach the CLI through its SERVESTACK_*_PORT variables; RAY_TMPDIR and the token
file live in a fresh short directory (Ray's Unix socket paths under it must stay below 108
bytes). On exit `servestack stop` ends the head and the directory goes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.config import REPO_ROOT
from servestack.local.head import LocalPorts


@dataclass(frozen=True)
class PrivateCli:
    ports: LocalPorts
    workdir: Path
    env: dict[str, str]

    def servestack(self, *args: str, timeout: float = 300,
                   env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from servestack.cli import main; main()", *args],
            env={**self.env, **(env or {})}, cwd=REPO_ROOT, capture_output=True, text=True,
            timeout=timeout, check=False,
        )


@contextmanager
def private_cli(prefix: str, own_dirs: Mapping[str, str] | None = None) -> Iterator[PrivateCli]:
    """`own_dirs`: variable → a fresh subdirectory it names (e.g. HOME, to see what is
    written there)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    ports = LocalPorts.free()
    env = {
        **os.environ,
        "RAY_TMPDIR": str(workdir),
        "RAY_AUTH_TOKEN_PATH": str(workdir / "auth_token"),
        "SERVESTACK_RAY_PORT": str(ports.gcs),
        "SERVESTACK_DASHBOARD_PORT": str(ports.dashboard),
        "SERVESTACK_HTTP_PORT": str(ports.http),
        "SERVESTACK_METRICS_PORT": str(ports.metrics),
        "COLUMNS": "200",
    }
    for variable, name in (own_dirs or {}).items():
        (workdir / name).mkdir()
        env[variable] = str(workdir / name)
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    cli = PrivateCli(ports, workdir, env)
    try:
        yield cli
    finally:
        cli.servestack("stop", timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)
