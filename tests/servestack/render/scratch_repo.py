"""A throwaway git repo holding this repo's files as they are now, for `servestack diff` tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from infra.config import REPO_ROOT


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=ci@servestack.invalid", "-c", "user.name=servestack-ci",
         *args], cwd=repo, check=True, capture_output=True, text=True,
    ).stdout


def copy_working_tree(target: Path) -> None:
    """The repo's files as they are now (tracked and new, not ignored), into `target`."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                            check=True, capture_output=True, text=True).stdout
    for relative in filter(None, listed.split("\0")):
        source = REPO_ROOT / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)


def committed_copy(target: Path) -> Path:
    """`target` as a fresh repo whose one commit is the working tree as it is now."""
    target.mkdir(parents=True, exist_ok=True)
    copy_working_tree(target)
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-qm", "base")
    return target


def prod_diff(repo: Path, base: str) -> str:
    """`servestack diff --base <base> --stack prod` in `repo` with its own code; the report."""
    result = subprocess.run(
        [sys.executable, "-c", "from servestack.cli import main; main()", "diff",
         "--base", base, "--stack", "prod", "--out", "report.md"],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    return (repo / "report.md").read_text()
