"""The local Ray head: its ports, how big it must be, and starting it on loopback with token auth.

Ray 2.60 replaces `--node-ip-address=127.0.0.1` with the machine's reachable address
(`resolve_ip_for_localhost`) and then binds the GCS, raylet, agents, workers and its
metrics servers to that address or to all interfaces. It keeps loopback only for a Ray it
considers single-node (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, its macOS/Windows default):
the node address stays 127.0.0.1, and every port, the autoscaler's and dashboard's
unauthenticated metrics (44217, 44227) included, listens there. A local head never has a
second node, so it runs that way (docs/local.md lists every port it opens).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.spec import ApplicationSpec
from infra.config import REPO_ROOT
from servestack.local.auth import AUTH_MODE_ENV
from servestack.local.dashboard import DashboardClient
from servestack.local.free_ports import free_ports
from servestack.local.serve_status import clean_message

LOOPBACK = "127.0.0.1"
DEFAULT_GCS_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_METRICS_PORT = 8080
START_TIMEOUT_S = 120.0
SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch between a cluster (node address = the machine's) and one node on loopback."""


class HeadError(RuntimeError):
    """The head could not be started; the message says what is in the way and how to clear it."""


@dataclass(frozen=True)
class LocalPorts:
    """Every port the local run listens on; each is a CLI option so two clusters can coexist."""

    http: int
    gcs: int = DEFAULT_GCS_PORT
    dashboard: int = DEFAULT_DASHBOARD_PORT
    metrics: int = DEFAULT_METRICS_PORT

    @property
    def gcs_address(self) -> str:
        return f"{LOOPBACK}:{self.gcs}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.dashboard}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics}/metrics"

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http}"

    @property
    def temp_dir(self) -> Path:
        """Ray's --temp-dir for this head: every process of the cluster names it (its session
        dir lives below), which is how `stop` finds them all, orphans included."""
        return cluster_temp_dir(self.gcs)

    def named(self) -> dict[str, int]:
        """Port per CLI option, to name the option to change when a port is taken."""
        return {"--ray-port": self.gcs, "--dashboard-port": self.dashboard,
                "--http-port": self.http, "--metrics-port": self.metrics}

    def ray_start_flags(self) -> list[str]:
        """The `ray start --head` flags that put the head on loopback, on these ports."""
        return [f"--node-ip-address={LOOPBACK}", f"--dashboard-host={LOOPBACK}",
                f"--port={self.gcs}", f"--dashboard-port={self.dashboard}",
                f"--metrics-export-port={self.metrics}"]

    @classmethod
    def free(cls) -> LocalPorts:
        """Ports no one listens on and no Ray will claim: a private head beside others."""
        http, gcs, dashboard, metrics = free_ports(4)
        return cls(http=http, gcs=gcs, dashboard=dashboard, metrics=metrics)


def private_temp_root() -> Path:
    """`$RAY_TMPDIR/ss-<uid>` (else the system's temp dir): the parent of every head's
    --temp-dir, owner-only. Ray makes a --temp-dir mode 0777 and its logs 0644
    (`try_make_directory_shared`), so without a private parent any local user could read
    the replicas' logs."""
    base = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    return Path(base) / f"ss-{os.getuid()}"


def cluster_temp_dir(gcs_port: int) -> Path:
    """Private to this user and port. Kept short: Ray puts
    `session_<date>_<time>_<pid>/sockets/dash_MetricsHead` under it, and a Unix socket path
    must fit 107 bytes (a longer name broke the dashboard under a test's RAY_TMPDIR)."""
    return private_temp_root() / str(gcs_port)


def ensure_private_temp_root() -> Path:
    """Create the private parent (0700), or make an existing one 0700; refuse one that is
    not a real directory of this user, where another user could see the head's files."""
    root = private_temp_root()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = root.lstat()
    except OSError as error:
        raise HeadError(f"cannot create the head's private temp dir {root}: {error}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise HeadError(f"{root} is not a directory of yours (a symlink, or another user's): "
                        "the head's logs would be readable there. Remove it, or set RAY_TMPDIR "
                        "to a directory of your own")
    if stat.S_IMODE(info.st_mode) != 0o700:
        root.chmod(0o700)
    return root


def required_cpus(apps: Iterable[ApplicationSpec], host_cpus: int | None = None) -> int:
    """Logical CPUs for the head: every deployment at max replicas must fit, and never fewer
    than the machine has (replicas may then use them all)."""
    worst_case = sum(
        dep.max_replicas * dep.resources.num_cpus for app in apps for dep in app.deployments
    )
    return max(math.ceil(worst_case), host_cpus if host_cpus is not None else os.cpu_count() or 1)


def head_environment(base: Mapping[str, str], repo_root: Path = REPO_ROOT) -> dict[str, str]:
    """Env for `ray start` and its workers: token auth, every port on loopback (single-node
    Ray), no downloads, the repo importable.

    Ray's schema rejects a local `working_dir`, so app code reaches replicas via PYTHONPATH.
    """
    env = dict(base)
    env[AUTH_MODE_ENV] = "token"
    env[SINGLE_NODE_ENV] = "0"
    env["HF_HUB_OFFLINE"] = "1"
    paths = [str(repo_root), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def ray_executable() -> str:
    """The `ray` CLI of this interpreter's environment, so head and client run one Ray."""
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.is_file() else shutil.which("ray")
    if found is None:
        raise HeadError("Ray is not installed: no `ray` command found. Run `pip install -e .`")
    return found


def embedded_node_labels(serve_config: Mapping[str, Any]) -> dict[str, str]:
    """The Ray node labels the one local node needs so that every deployment's label selector
    (its worker group on the cluster) holds on it.

    The local node plays every worker group of the stack at once, which one label value per
    key can only express for a stack whose deployments all select the same group (the local
    stack: `cpu`); a stack spread over several groups is for `servestack rehearse`."""
    labels: dict[str, str] = {}
    for app in serve_config.get("applications", []):
        for dep in app.get("deployments", []):
            selector = (dep.get("ray_actor_options") or {}).get("label_selector") or {}
            for key, value in selector.items():
                if labels.setdefault(key, value) != value:
                    raise HeadError(
                        f"the local Ray is one node, but this stack's deployments select "
                        f"{key}={labels[key]} and {key}={value} (worker groups of the cluster); "
                        "`servestack rehearse` runs one node per group")
    return dict(sorted(labels.items()))


def ray_start_argv(ports: LocalPorts, num_cpus: int,
                   labels: Mapping[str, str] | None = None) -> list[str]:
    label_args = ([f"--labels={','.join(f'{k}={v}' for k, v in sorted(labels.items()))}"]
                  if labels else [])
    return [
        ray_executable(), "start", "--head",
        *ports.ray_start_flags(),
        f"--temp-dir={ports.temp_dir}",
        f"--num-cpus={num_cpus}",
        *label_args,
        "--disable-usage-stats",
    ]


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def check_ports_free(ports: LocalPorts) -> None:
    """Fail before `ray start` rather than leave a half-started head behind."""
    taken = [(option, port) for option, port in ports.named().items() if port_in_use(port)]
    if taken:
        listing = ", ".join(f"{port} ({option})" for option, port in taken)
        raise HeadError(
            f"port(s) {listing} already in use by another process. If it is a Ray from an "
            "earlier run, `servestack stop` ends it; otherwise pass a free port with the option "
            "named"
        )


def start_head(ports: LocalPorts, num_cpus: int, env: Mapping[str, str],
               client: DashboardClient, timeout_s: float = START_TIMEOUT_S,
               labels: Mapping[str, str] | None = None) -> None:
    """`ray start --head` on the given ports (with these Ray node labels), then wait until the
    dashboard accepts our token."""
    check_ports_free(ports)
    ensure_private_temp_root()
    argv = ray_start_argv(ports, num_cpus, labels)
    try:
        # A session of its own: the head outlives the terminal `serve` ran in (`stop` ends it).
        result = subprocess.run(argv, env=dict(env), capture_output=True, text=True,
                                timeout=timeout_s, check=False, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise HeadError(f"`ray start` did not finish within {timeout_s:.0f} s") from None
    if result.returncode != 0:
        raise HeadError(f"`ray start` failed (exit {result.returncode}):\n"
                        + output_tail(result.stdout + result.stderr))
    wait_for_dashboard(client, timeout_s)


def wait_for_dashboard(client: DashboardClient, timeout_s: float) -> None:
    error = client.wait_until_up(timeout_s)
    if error is not None:
        raise HeadError(f"Ray started but its dashboard at {client.url} did not come up within "
                        f"{timeout_s:.0f} s: {error}")


def output_tail(output: str, lines: int = 20) -> str:
    """The end of a command's output, colour codes removed: where Ray puts the actual error."""
    plain = clean_message(output).splitlines()
    return "\n".join(plain[-lines:])
