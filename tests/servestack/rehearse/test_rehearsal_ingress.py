"""The rehearsal's ingress, fast: the stack's ingress env on the head with HAProxy's private
files under the rehearsal's temp dir, the report's difference, and HAProxy's statistics read
from a real HAProxy (the binary Ray runs) and matched to Serve's replicas and their nodes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from apps.haproxy_config import BINARY_ENV
from infra.config import ServeOptions
from infra.ingress_environment import HAPROXY_ENABLE_ENV, HAPROXY_METRICS_PORT, ingress_environment
from infra.ray_internals import serve_haproxy_binary  # the binary Ray's HAProxyManager runs
from servestack.local.haproxy import local_wrapper
from servestack.local.head import LocalPorts
from servestack.local.serve_status import ServeSnapshot
from servestack.rehearse.cluster import (
    HAPROXY_DIR,
    FakeCluster,
    RehearsalPorts,
    head_environment,
    stop,
)
from servestack.rehearse.ingress import haproxy_servers, ingress_name, served_by
from servestack.rehearse.probe import AutoscalerView
from servestack.rehearse.serve_copy import rehearsal_serve_config
from servestack.rehearse.translation import FAKE_HEAD_NODE_TYPE

NODE_ID = "f" * 56  # Ray nests HAProxy's files under the node id
REPLICA = "SERVE_REPLICA_embeddings-Embedder-lfm9s50f"  # as Ray names the server
FALLBACK = f"SERVE_PROXY_ACTOR-fallback-{NODE_ID}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Like the rehearsal's temp dir: HAProxy's socket paths must stay short."""
    path = Path(tempfile.mkdtemp(prefix="ssr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_head_runs_the_stacks_ingress_env_with_haproxy_files_in_the_temp_dir(
        short_dir: Path) -> None:
    env = head_environment({"PATH": "/bin"}, short_dir, "tok",
                           ingress_environment(ServeOptions()))
    assert env[HAPROXY_ENABLE_ENV] == "1" and ingress_name(env) == "HAProxy"
    assert env[BINARY_ENV] == str(local_wrapper())  # servestack's wrapper, not the image's path
    assert Path(env["RAY_SERVE_HAPROXY_SOCKET_PATH"]).parent == short_dir / HAPROXY_DIR
    assert (short_dir / HAPROXY_DIR).stat().st_mode & 0o777 == 0o700
    assert env["RAY_SERVE_HAPROXY_METRICS_PORT"] != str(HAPROXY_METRICS_PORT)  # a free port
    python = head_environment({"PATH": "/bin"}, short_dir, "tok",
                              ingress_environment(ServeOptions(haproxy=False)))
    assert ingress_name(python) == "Serve's Python proxy"
    assert not [key for key in python if "HAPROXY" in key or key == HAPROXY_ENABLE_ENV]


def test_the_serve_copy_names_the_python_proxy_when_the_stack_turns_haproxy_off() -> None:
    copy = rehearsal_serve_config({"proxy_location": "EveryNode", "applications": []}, 18123,
                                  ingress_name({}))
    assert any("Serve's Python proxy on the head only" in d for d in copy.differences)


class _Replica(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_haproxy_servers_count_what_haproxy_sent_each_replica_and_stop_ends_an_orphan(
        short_dir: Path) -> None:
    """HAProxy's `show stat` per server, matched to the replica's node type; then `stop` finds
    that HAProxy, an orphan of no Ray process, by its files under the temp dir."""
    replica = ThreadingHTTPServer(("127.0.0.1", 0), _Replica)
    threading.Thread(target=replica.serve_forever, daemon=True).start()
    node_dir = short_dir / HAPROXY_DIR / NODE_ID  # where the head's HAProxyManager puts them
    node_dir.mkdir(parents=True)
    front = _free_port()
    (node_dir / "haproxy.cfg").write_text(f"""global
    stats socket {node_dir}/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend http_frontend
    bind 127.0.0.1:{front}
    default_backend http-embeddings
backend http-embeddings
    server {REPLICA} 127.0.0.1:{replica.server_address[1]}
    server {FALLBACK} 127.0.0.1:{_free_port()} backup
""")
    haproxy = subprocess.Popen([serve_haproxy_binary(), "-db", "-f", str(node_dir / "haproxy.cfg")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (node_dir / "admin.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(3):
            assert requests.get(f"http://127.0.0.1:{front}/", timeout=10).text == "ok"
        servers = haproxy_servers(short_dir / HAPROXY_DIR)
        no_ports = RehearsalPorts(LocalPorts(http=0, gcs=0, dashboard=0, metrics=0), 0, 0)
        assert stop(FakeCluster(short_dir, no_ports, "", {})) == 1
        assert haproxy.poll() is not None and not short_dir.exists()
    finally:
        haproxy.kill()
        haproxy.wait()
        replica.shutdown()
    assert {(s.backend, s.server, s.requests) for s in servers} == {
        ("http-embeddings", REPLICA, 3), ("http-embeddings", FALLBACK, 0)}
    snapshot = ServeSnapshot.model_validate({"applications": {"embeddings": {
        "name": "embeddings", "status": "RUNNING", "deployments": {"Embedder": {
            "name": "Embedder", "status": "HEALTHY", "replicas": [
                {"state": "RUNNING", "replica_id": "lfm9s50f", "node_id": "w1"},
                {"state": "RUNNING", "replica_id": "zzzzzzzz", "node_id": "w1"}]}}}}})
    view = AutoscalerView(at=0.0, nodes=(("h", FAKE_HEAD_NODE_TYPE), ("w1", "cpu")))
    assert [(s.app, s.deployment, s.replica_id, s.node_type, s.requests)
            for s in served_by(servers, snapshot, view)] == [
        ("embeddings", "Embedder", "lfm9s50f", "cpu", 3)]
    assert haproxy_servers(short_dir / "nothing-here") == []
