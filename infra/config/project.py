"""The project's fixed facts: its Pulumi namespace, where it lives, the versions it pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Final

PROJECT: Final = "servestack"
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
STACKS_DIR: Final = REPO_ROOT / "stacks"
PYPROJECT: Final = REPO_ROOT / "pyproject.toml"
KUBERAY_VERSION: Final = "1.7.0"

_RAY_PIN = re.compile(r"^ray(\[[^\]]*\])?==(?P<version>\d+\.\d+\.\d+)$")


def pinned_ray_version(pyproject: Path = PYPROJECT) -> str:
    """The Ray release pyproject.toml pins: the one version rayVersion and image tags use."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    for requirement in dependencies:
        found = _RAY_PIN.match(requirement.replace(" ", ""))
        if found:
            return found["version"]
    raise LookupError(f"{pyproject} pins no exact ray version (ray[serve]==X.Y.Z)")


RAY_VERSION: Final = pinned_ray_version()
"""The Ray version servestack is pinned to; rayVersion and image tags derive from it."""
