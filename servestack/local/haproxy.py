"""Private HAProxy files and ports for one local cluster.

Ray's HAProxy ingress writes its config, admin socket and server state under
/tmp/haproxy-serve and binds stats (8404), metrics (9101) and a fallback Python proxy (8500)
on every host. Two local clusters on one machine (other engineers' tests, a benchmark) would
overwrite each other's files and fight for the ports, so each local head gets its own.
On Kubernetes each pod has its own /tmp and network, and Ray's defaults stand.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from apps.haproxy_config import ADMIN_HOST_ENV, BINARY_ENV, WRAPPER_SCRIPT
from infra.ingress_environment import DRAIN_ENV, HAPROXY_ENABLE_ENV
from servestack.local.free_ports import free_ports
from servestack.local.head import LOOPBACK, HeadError

SOCKET_PATH_LIMIT = 97
"""HAProxy refuses a Unix socket path longer than this."""
RAY_NODE_DIR_CHARS = 57
"""Ray nests every HAProxy file under a 56-character node id directory."""


class HaproxyPathError(HeadError):
    """The private directory is too long for HAProxy's socket paths."""


def local_haproxy_dir(gcs_port: int) -> Path:
    """Under the system's temp dir but never below $RAY_TMPDIR, and in /tmp when $TMPDIR is
    too long itself: HAProxy's socket paths must stay short (SOCKET_PATH_LIMIT)."""
    name = f"ss-{os.getuid()}-{gcs_port}-hap"
    for base in (Path(tempfile.gettempdir()), Path("/tmp")):
        if _fits(base / name):
            return base / name
    return Path("/tmp") / name  # refused with a clear message by private_haproxy_environment


def _fits(workdir: Path) -> bool:
    return len(str(workdir / "admin.sock")) + RAY_NODE_DIR_CHARS <= SOCKET_PATH_LIMIT


def private_haproxy_environment(env: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """Files under `workdir` and free ports, when `env` turns HAProxy on; else nothing.

    `workdir` is created owner-only: HAProxy makes its admin socket (level admin) mode 0666,
    so only the directory keeps other local users away from it."""
    if env.get(HAPROXY_ENABLE_ENV) != "1":
        return {}
    socket_path = workdir / "admin.sock"
    if not _fits(workdir):
        raise HaproxyPathError(
            f"{workdir} is too long for HAProxy's admin socket (a path of at most "
            f"{SOCKET_PATH_LIMIT} bytes once Ray adds its node id): set a shorter TMPDIR"
        )
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    workdir.chmod(0o700)
    stats, metrics, fallback_http, fallback_grpc = free_ports(4)
    return {
        BINARY_ENV: str(local_wrapper()),
        ADMIN_HOST_ENV: LOOPBACK,
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(workdir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(socket_path),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(workdir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(workdir / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(workdir / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback_http),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(fallback_grpc),
    }


def local_wrapper() -> Path:
    """The HAProxy config wrapper installed beside this Python (the image has its own path)."""
    wrapper = Path(sys.executable).parent / WRAPPER_SCRIPT
    if not os.access(wrapper, os.X_OK):
        raise HeadError(f"{wrapper} is missing: serve.haproxy needs servestack's HAProxy "
                        "wrapper; reinstall the project (make install)")
    return wrapper


DRAIN_RECORD = "ingress-drain-s"


def record_drain(workdir: Path, env: Mapping[str, str]) -> None:
    """Keep the drain a head was started with next to its HAProxy files, so `stop` waits for
    that cluster's drain without reading (or requiring) a stack file."""
    if env.get(HAPROXY_ENABLE_ENV) == "1" and DRAIN_ENV in env:
        (workdir / DRAIN_RECORD).write_text(env[DRAIN_ENV])


def recorded_drain_s(workdir: Path) -> float | None:
    """The recorded drain; None when the head runs no HAProxy (or none of ours runs)."""
    try:
        return float((workdir / DRAIN_RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return None
