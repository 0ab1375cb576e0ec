"""Ray's token auth as the local head and its REST clients see it.

Ray 2.60 looks for the cluster token in `RAY_AUTH_TOKEN`, then the file named by
`RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`. `ray start --head` with
`RAY_AUTH_MODE=token` refuses to start without one, so `servestack serve` creates it the
way `ray get-auth-token --generate` does (256 random bits, hex), but honouring
`RAY_AUTH_TOKEN_PATH`, which Ray's generator ignores.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


def token_path(env: Mapping[str, str] = os.environ) -> Path:
    """Where Ray reads the token file from (and where a new token is written)."""
    custom = env.get(TOKEN_PATH_ENV)
    return Path(custom).expanduser() if custom else Path.home() / ".ray" / "auth_token"


def read_token(env: Mapping[str, str] = os.environ) -> str | None:
    """The token Ray's clients would use, in Ray's own lookup order; None if there is none."""
    from_env = env.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    path = token_path(env)
    if path.is_file():
        _owner_only(path)
        return path.read_text().strip() or None
    return None


def _owner_only(path: Path) -> None:
    """A token readable by others is as good as none: make it 0600, and say so.

    Ray's own `ray.init` writes the file with the umask (often 0644)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        sys.stderr.write(
            f"warning: the Ray auth token {path} was readable by others (mode {mode:04o}); "
            "it is now 0600. Anyone who read it could reach this Ray: consider a new token "
            "(delete the file, `servestack stop`, `servestack serve`).\n"
        )


def ensure_token(env: Mapping[str, str] = os.environ) -> str:
    """The existing token, or a new one written with owner-only permissions."""
    token = read_token(env)
    if token is not None:
        return token
    path = token_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return token


def auth_headers(token: str) -> dict[str, str]:
    """The header Ray's dashboard middleware checks first (`Authorization: Bearer …`)."""
    return {"Authorization": f"Bearer {token}"}
