"""`python -m servestack` is the entry point's CLI, exit codes included."""

from __future__ import annotations

import subprocess
import sys

from infra.config import REPO_ROOT


def test_python_dash_m_runs_the_cli_with_its_exit_codes() -> None:
    shown = subprocess.run([sys.executable, "-m", "servestack", "--help"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=False, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "plan" in shown.stdout and "render" in shown.stdout
    unknown = subprocess.run([sys.executable, "-m", "servestack", "plan", "--stack", "nope"],
                             cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                             timeout=120)
    assert unknown.returncode == 2
    assert "no stack 'nope'" in unknown.stderr
