"""The ingress a rehearsal runs, and HAProxy's own account of what it served.

The head runs the stack's ingress env (infra.ingress_environment), as every Ray
container of the cluster does. With `serve.haproxy` that is HAProxy; the rehearsal's Serve
config runs the proxy on the head only (serve_copy.py), so one HAProxy routes straight to the
ingress replicas on the fake worker nodes. Its statistics, read from its admin socket
(`show stat`), name every backend server (an ingress replica, by its actor name) and how many
requests HAProxy sent it: the evidence that HAProxy served across nodes.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.ingress_environment import HAPROXY_ENABLE_ENV
from servestack.local.serve_status import ServeSnapshot
from servestack.rehearse.probe import AutoscalerView

ADMIN_SOCKET = "admin.sock"
"""Ray nests it under the node id: <RAY_SERVE_HAPROXY_SOCKET_PATH's dir>/<node id>/admin.sock."""
SOCKET_TIMEOUT_S = 5.0
_AGGREGATES = ("FRONTEND", "BACKEND")


def ingress_name(env: Mapping[str, str]) -> str:
    """The ingress a Ray started with `env` runs."""
    return "HAProxy" if env.get(HAPROXY_ENABLE_ENV) == "1" else "Serve's Python proxy"


@dataclass(frozen=True)
class BackendServer:
    """One server of an HAProxy backend, as HAProxy's statistics report it."""

    backend: str  # Ray names it `http-<app>`
    server: str  # the replica's actor name, made safe: SERVE_REPLICA__<app>-<dep>-<replica id>
    status: str  # UP, DOWN, MAINT, …
    address: str  # host:port HAProxy connects to
    requests: int  # `req_tot`: HTTP requests HAProxy sent to it


def parse_show_stat(text: str) -> list[BackendServer]:
    """Servers of every backend in `show stat`'s CSV; frontends and aggregate rows left out."""
    rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
    return [BackendServer(backend=row["pxname"], server=row["svname"], status=row["status"],
                          address=row.get("addr") or "",
                          requests=int(row.get("req_tot") or row.get("stot") or 0))
            for row in rows
            if row.get("svname") and row["svname"] not in _AGGREGATES]


def show_stat(admin_socket: Path) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(SOCKET_TIMEOUT_S)
        conn.connect(str(admin_socket))
        conn.sendall(b"show stat\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def haproxy_servers(haproxy_dir: Path) -> list[BackendServer]:
    """Backend servers of every HAProxy whose admin socket is under `haproxy_dir` (one per
    node running a proxy: the head alone in a rehearsal); none when no HAProxy answers."""
    servers: list[BackendServer] = []
    for admin_socket in sorted(haproxy_dir.glob(f"*/{ADMIN_SOCKET}")):
        try:
            servers.extend(parse_show_stat(show_stat(admin_socket)))
        except OSError:
            continue
    return servers


@dataclass(frozen=True)
class ServedBy:
    """A backend server HAProxy sent requests to, and where Serve says that replica runs."""

    app: str
    deployment: str
    replica_id: str
    node_type: str
    status: str
    requests: int


def served_by(servers: Sequence[BackendServer], snapshot: ServeSnapshot,
              view: AutoscalerView) -> list[ServedBy]:
    """HAProxy's servers matched to Serve's replicas by replica id (the end of the server name)
    and to node types by the replica's node id; servers of no replica (Ray's fallback to its
    Python proxy) are left out."""
    out = []
    for app_name, app in sorted(snapshot.applications.items()):
        for dep_name, dep in sorted(app.deployments.items()):
            for replica in dep.replicas:
                if not replica.replica_id:
                    continue
                for server in servers:
                    if server.server.endswith(f"-{replica.replica_id}"):
                        node_type = (view.node_type_of(replica.node_id or "")
                                     or f"unknown node {replica.node_id}")
                        out.append(ServedBy(app_name, dep_name, replica.replica_id, node_type,
                                            server.status, server.requests))
    return out
