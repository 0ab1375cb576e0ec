"""A private fake multi-node Ray: head with the head group's start params, Ray's autoscaler v2
launching and removing local raylets per worker group.

Everything is private to one rehearsal: free ports picked at start, a fresh temp dir, a fresh
auth token. Stopping ends exactly the processes whose command line names that temp dir (and
their children): another Ray on the machine is never touched (no `ray stop`). HAProxy, which
outlives the proxy actor that started it, keeps its files in the temp dir (HAPROXY_DIR) and
names them on its command line, so it is found the same way, as `servestack stop` finds a
local head's by its private HAProxy dir.

Autoscaler v2: KubeRay 1.7 sets RAY_USAGE_STATS_KUBERAY_IN_USE, RAY_CLOUD_INSTANCE_ID and
RAY_NODE_TYPE_NAME on every Ray container, and Ray 2.60's `ray start --head` then enables
autoscaler v2 unless RAY_enable_autoscaler_v2 says otherwise (ray/scripts/scripts.py);
KubeRay sets that variable only when `autoscalerOptions.version` is given, and our
RayService pins `version: v2`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from infra.config import REPO_ROOT
from infra.ingress_environment import HAPROXY_ENABLE_ENV
from infra.ray_internals import (
    CLOUD_INSTANCE_ID_ENV,
    FAKE_CLUSTER_ENV,
    FAKE_HEAD_NODE_ID,
    FAKE_HEAD_NODE_TYPE,
    NODE_TYPE_NAME_ENV,
)
from servestack.local.dashboard import DashboardClient
from servestack.local.free_ports import free_ports
from servestack.local.haproxy import private_haproxy_environment
from servestack.local.head import HeadError, LocalPorts, output_tail, ray_executable
from servestack.rehearse.provider import OBJECT_STORE_ENV

START_TIMEOUT_S = 300.0
OBJECT_STORE_BYTES = 128 * 1024**2
"""Per node, head included: logical nodes share this machine's /dev/shm (the cluster's pods
each get Ray's default, 30% of their memory)."""
GRACE_PERIOD_S = 8.0
HAPROXY_DIR = "hap"
"""HAProxy's private files, inside the temp dir: its command line then names the temp dir, so
`stop` finds it (an orphan included) as it finds every Ray process, and removes its files."""
_LAUNCH_FAILED = re.compile(r"Failed to launch \d+ nodes of type (\S+?): (.*)")


class ClusterError(RuntimeError):
    """The fake cluster could not be started; the message carries Ray's own output."""


@dataclass(frozen=True)
class RehearsalPorts:
    """A local head's ports, plus two that `ray start` would otherwise take at fixed defaults
    (client server 10001, dashboard agent 52365), where another Ray on the machine may be."""

    head: LocalPorts
    client: int
    dashboard_agent: int

    @classmethod
    def free(cls) -> RehearsalPorts:
        http, gcs, dashboard, metrics, client, dashboard_agent = free_ports(6)
        return cls(LocalPorts(http=http, gcs=gcs, dashboard=dashboard, metrics=metrics),
                   client, dashboard_agent)


@dataclass
class FakeCluster:
    temp_dir: Path
    ports: RehearsalPorts
    token: str
    env: dict[str, str]

    @property
    def client(self) -> DashboardClient:
        return DashboardClient(self.ports.head.dashboard_url, self.token, timeout_s=30.0)

    @property
    def session_dir(self) -> Path:
        return self.temp_dir / "session_latest"

    def autoscaler_events(self) -> list[str]:
        """Messages the autoscaler logged as events (its scheduling decisions, infeasible
        requests included), oldest first."""
        messages: list[str] = []
        for path in sorted((self.session_dir / "logs" / "events").glob("event_AUTOSCALER*.log")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    messages.append(str(json.loads(line).get("message", "")))
                except json.JSONDecodeError:
                    continue
        return messages

    def launch_failures(self) -> list[str]:
        """`<node type>: <reason>` for every launch the provider failed, oldest first (the
        autoscaler's events say only that a launch failed; its log says why)."""
        path = self.session_dir / "logs" / "monitor.log"
        if not path.is_file():
            return []
        return [match.group(1) + ": " + match.group(2)
                for match in _LAUNCH_FAILED.finditer(path.read_text(errors="replace"))]

    def processes(self) -> list[psutil.Process]:
        return cluster_processes(self.temp_dir)

    @property
    def haproxy_dir(self) -> Path | None:
        """Where the head's HAProxy keeps its admin socket; None when the stack runs Serve's
        Python proxy."""
        return self.temp_dir / HAPROXY_DIR if self.env.get(HAPROXY_ENABLE_ENV) == "1" else None


def head_environment(base: Mapping[str, str], temp_dir: Path, token: str,
                     ingress_env: Mapping[str, str]) -> dict[str, str]:
    """What the head (and, through its monitor, every fake node) runs with: `ingress_env`,
    the stack's ingress settings every Ray container of the cluster carries
    (infra.ingress_environment), and under HAProxy its files and ports private
    to this rehearsal, as a local head has them."""
    # CUDA_VISIBLE_DEVICES goes: Ray refuses to start a node with logical GPUs when it is set
    # to nothing ("Attempting to start raylet with 1 GPU, but CUDA_VISIBLE_DEVICES contains
    # []"); with no CUDA device on this machine, torch finds none either way.
    env = {k: v for k, v in base.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_AUTH_TOKEN", "CUDA_VISIBLE_DEVICES"))}
    paths = [str(REPO_ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env.update(ingress_env)
    env.update({
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "HF_HUB_OFFLINE": "1",
        "RAY_TMPDIR": str(temp_dir),
        FAKE_CLUSTER_ENV: "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_enable_autoscaler_v2": "1",
        CLOUD_INSTANCE_ID_ENV: FAKE_HEAD_NODE_ID,
        NODE_TYPE_NAME_ENV: FAKE_HEAD_NODE_TYPE,
        OBJECT_STORE_ENV: str(OBJECT_STORE_BYTES),
        # Ray's memory monitor judges the whole host, which every fake node (and every other
        # user of the machine) shares; on the cluster each pod is judged by its own limit.
        "RAY_memory_monitor_refresh_ms": "0",
    })
    env.update(private_haproxy_environment(env, temp_dir / HAPROXY_DIR))
    return env


def head_argv(ports: RehearsalPorts, temp_dir: Path, config_path: Path,
              head_resources: Mapping[str, float]) -> list[str]:
    """`ray start --head` with the head group's resources as Ray's translation reads them
    (rayStartParams num-cpus, memory from the container limit as KubeRay adds it), on
    loopback and private ports."""
    argv = [
        ray_executable(), "start", "--head",
        *ports.head.ray_start_flags(),
        f"--ray-client-server-port={ports.client}",
        f"--dashboard-agent-listen-port={ports.dashboard_agent}",
        f"--num-cpus={int(head_resources.get('CPU', 0))}",
        f"--num-gpus={int(head_resources.get('GPU', 0))}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--temp-dir={temp_dir}",
        f"--autoscaling-config={config_path}",
        "--disable-usage-stats",
    ]
    if "memory" in head_resources:
        argv.append(f"--memory={int(head_resources['memory'])}")
    custom = {k: v for k, v in head_resources.items() if k not in ("CPU", "GPU", "memory")}
    if custom:
        argv.append(f"--resources={json.dumps(custom, sort_keys=True)}")
    return argv


@contextmanager
def fake_cluster(config_for: Any, head_resources: Mapping[str, float],
                 ingress_env: Mapping[str, str], base_env: Mapping[str, str] = os.environ,
                 keep_logs: bool = False) -> Iterator[FakeCluster]:
    """Start the cluster, yield it, and stop it on exit, failure or Ctrl-C.

    `config_for(gcs_address)` returns the autoscaling config: it names the GCS address,
    which is known only once the ports are chosen.
    """
    # Short: Ray's Unix socket paths under it must stay below 108 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="ssr-", dir="/tmp"))
    ports = RehearsalPorts.free()
    token = secrets.token_hex(32)
    try:
        env = head_environment(base_env, temp_dir, token, ingress_env)
    except HeadError as refused:  # HAProxy's socket path too long: never under /tmp/ssr-*
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise ClusterError(str(refused)) from None
    config_path = temp_dir / "autoscaling-config.json"
    config_path.write_text(json.dumps(config_for(ports.head.gcs_address), indent=2, sort_keys=True))
    cluster = FakeCluster(temp_dir=temp_dir, ports=ports, token=token, env=env)
    try:
        argv = head_argv(ports, temp_dir, config_path, head_resources)
        try:
            result = subprocess.run(argv, env=env, capture_output=True, text=True,
                                    timeout=START_TIMEOUT_S, check=False,
                                    start_new_session=True)
        except subprocess.TimeoutExpired:
            raise ClusterError(
                f"`ray start --head` did not finish in {START_TIMEOUT_S:.0f} s") from None
        if result.returncode != 0:
            raise ClusterError(f"`ray start --head` failed (exit {result.returncode}):\n"
                               + output_tail(result.stdout + result.stderr))
        error = cluster.client.wait_until_up(START_TIMEOUT_S)
        if error is not None:
            raise ClusterError(f"the dashboard at {cluster.client.url} did not come up: {error}")
        yield cluster
    finally:
        stop(cluster, remove=not keep_logs)


def cluster_processes(temp_dir: Path) -> list[psutil.Process]:
    """This user's processes whose command line names the temp dir, and their children."""
    marker = str(temp_dir)
    uid = os.getuid()
    own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            if proc.info["uids"].real != uid or proc.pid in own:
                continue
            if any(marker in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
                found.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    return sorted(found.values(), key=lambda p: p.pid)


def stop(cluster: FakeCluster, remove: bool = True) -> int:
    """Terminate the cluster's processes (raylets and workers first, GCS last), kill what
    outlives the grace period, remove the temp dir; returns how many processes there were."""
    processes = cluster.processes()
    names = {}
    for proc in processes:
        try:
            names[proc.pid] = proc.name()
        except psutil.Error:
            names[proc.pid] = ""
    stages = [[p for p in processes if names[p.pid] not in ("gcs_server",)],
              [p for p in processes if names[p.pid] == "gcs_server"]]
    for group in stages:
        for proc in group:
            try:
                proc.terminate()
            except psutil.Error:
                continue
        _, alive = psutil.wait_procs(group, timeout=GRACE_PERIOD_S / 2)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(alive, timeout=2)
    # Processes that started while we stopped (a raylet the autoscaler was launching).
    for proc in cluster.processes():
        try:
            proc.kill()
        except psutil.Error:
            continue
    if remove:
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    return len(processes)
