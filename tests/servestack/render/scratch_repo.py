"""A throwaway git repo holding this repo's files as they are now, for `servestack diff` tests."""

from __future__ import annotations

import shutil
import subprocess
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
