"""Each local cluster's HAProxy gets its own files and ports, so concurrent clusters coexist."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from infra.config import ServeOptions
from infra.serve_config import haproxy_environment
from servestack.local.haproxy import (
    HaproxyPathError,
    local_haproxy_dir,
    private_haproxy_environment,
)


def test_two_clusters_share_no_haproxy_file_or_port(tmp_path: Path) -> None:
    switched_on = haproxy_environment(ServeOptions())
    first = private_haproxy_environment(switched_on, Path("/tmp/a"))
    second = private_haproxy_environment(switched_on, Path("/tmp/b"))
    assert first.keys() == second.keys()
    assert {"RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_STATS_PORT",
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"} <= first.keys()
    assert not set(first.values()) & set(second.values())


def test_nothing_is_added_when_haproxy_is_off() -> None:
    assert private_haproxy_environment(haproxy_environment(ServeOptions(haproxy=False)),
                                       Path("/tmp/a")) == {}


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
    assert private_haproxy_environment(haproxy_environment(ServeOptions()), chosen)
