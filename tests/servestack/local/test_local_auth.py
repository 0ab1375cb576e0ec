"""Token lookup follows Ray's order; a missing token is created private to the user."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from servestack.local.auth import auth_headers, ensure_token, read_token, token_path


def test_token_from_env_wins_over_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    env = {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}
    assert read_token(env) == "from-env"


def test_token_file_named_by_env_is_read_stripped(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    assert read_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}) == "from-file"


def test_default_token_file_is_rays_home_location() -> None:
    assert token_path({}) == Path.home() / ".ray" / "auth_token"


def test_missing_token_is_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "ray" / "auth_token")}
    assert read_token(env) is None
    token = ensure_token(env)
    assert len(token) == 64 and int(token, 16) >= 0
    assert ensure_token(env) == token
    mode = stat.S_IMODE((tmp_path / "ray" / "auth_token").stat().st_mode)
    assert mode == 0o600


def test_dashboard_header_is_a_bearer_token() -> None:
    assert auth_headers("abc") == {"Authorization": "Bearer abc"}


def test_a_token_file_readable_by_others_is_made_owner_only_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ray's own `ray.init` writes the file with the umask; it used to be reused as 0644."""
    path = tmp_path / "auth_token"
    path.write_text("abc123\n")
    path.chmod(0o644)
    assert ensure_token({"RAY_AUTH_TOKEN_PATH": str(path)}) == "abc123"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "was readable by others (mode 0644)" in capsys.readouterr().err
