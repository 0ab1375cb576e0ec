"""Each local cluster's HAProxy gets its own files and ports, so concurrent clusters coexist."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.haproxy_config import ADMIN_HOST_ENV, BINARY_ENV
from infra.config import ServeOptions
from infra.ingress_environment import haproxy_environment
from infra.stack_file import load_stack
from servestack.local.haproxy import (
    HaproxyPathError,
    local_haproxy_dir,
    local_wrapper,
    private_haproxy_environment,
    record_drain,
    recorded_drain_s,
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """HAProxy's socket paths must be short: pytest's tmp_path is too long for them."""
    path = Path(tempfile.mkdtemp(prefix="sst-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_two_clusters_share_no_haproxy_file_or_port(short_dir: Path) -> None:
    tmp_path = short_dir
    switched_on = haproxy_environment(ServeOptions())
    first = private_haproxy_environment(switched_on, tmp_path / "a")
    second = private_haproxy_environment(switched_on, tmp_path / "b")
    assert ((tmp_path / "a").stat().st_mode & 0o777) == 0o700  # its admin socket is 0666
    assert first.keys() == second.keys()
    assert {"RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_STATS_PORT",
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"} <= first.keys()
    shared = {BINARY_ENV: str(local_wrapper()), ADMIN_HOST_ENV: "127.0.0.1"}
    assert shared.items() <= first.items() and shared.items() <= second.items()
    assert not {v for k, v in first.items() if k not in shared} & set(second.values())


def test_nothing_is_added_when_haproxy_is_off(tmp_path: Path) -> None:
    assert private_haproxy_environment(haproxy_environment(ServeOptions(haproxy=False)),
                                       tmp_path / "a") == {}


def test_a_directory_too_long_for_haproxys_socket_paths_is_refused() -> None:
    with pytest.raises(HaproxyPathError, match="too long"):
        private_haproxy_environment(haproxy_environment(ServeOptions()), Path("/tmp/" + "x" * 40))


def test_a_long_tmpdir_falls_back_to_tmp(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    long_tmp = tmp_path / ("t" * 30)
    long_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert tempfile.gettempdir() == str(long_tmp)
    chosen = local_haproxy_dir(6379)
    assert chosen.parent == Path("/tmp")
    assert len(str(chosen)) < len(str(long_tmp))


def test_stop_waits_for_the_drain_its_head_was_started_with(short_dir: Path) -> None:
    """The head's env carries the stack's drain to Ray; `stop` reads the same number back."""
    local = load_stack("local").stack.serve
    env = haproxy_environment(local)
    assert float(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) == local.ingress_drain_s
    record_drain(short_dir, env)
    assert recorded_drain_s(short_dir) == local.ingress_drain_s
    off = short_dir / "off"
    off.mkdir()
    record_drain(off, haproxy_environment(ServeOptions(haproxy=False)))
    assert recorded_drain_s(off) is None  # no HAProxy: Ray skips the ingress drain
