"""A throw-away local Ray head for one benchmark variant, deployed the way `servestack serve` does.

Ray and Serve read their throughput switches from the environment when they start, so each
variant gets its own head (own ports, own HAProxy files) and the same REST deploy path as
the local runner and KubeRay. Scenarios then redeploy overrides of the app specs onto it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from apps.spec import ApplicationSpec
from infra.config import ServeOptions
from infra.serve_config import build_serve_config
from servestack.local.auth import auth_headers, ensure_token
from servestack.local.dashboard import DashboardClient
from servestack.local.haproxy import private_haproxy_environment
from servestack.local.head import LocalPorts, head_environment, start_head
from servestack.local.loopback import start_serve_on_loopback
from servestack.local.processes import forget_cluster_address, stop_cluster


class DeployTimeoutError(RuntimeError):
    """The deployed config did not settle (all replicas RUNNING with the new options) in time."""


def variant_environment(switches: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """The variant's switches plus private HAProxy paths and ports, so concurrent clusters
    on this machine (other engineers' tests) never share /tmp/haproxy-serve or port 8404.

    Ray nests a 56-character node id under these paths and HAProxy refuses socket paths
    over 97 bytes, so `workdir` must be short (see BenchCluster.workdir)."""
    return {**switches, **private_haproxy_environment(switches, workdir)}


def _matches(sent: Mapping[str, Any], reported: Mapping[str, Any]) -> bool:
    """Every option we sent is what Ray reports for the deployment now."""
    for key in ("max_ongoing_requests", "user_config"):
        if key in sent and sent[key] != reported.get(key):
            return False
    sent_cpus = sent.get("ray_actor_options", {}).get("num_cpus")
    reported_cpus = (reported.get("ray_actor_options") or {}).get("num_cpus")
    return sent_cpus is None or float(sent_cpus) == float(reported_cpus or 0)


@dataclass
class BenchCluster:
    """One head with the given env switches; `deploy` blocks until the new config serves."""

    switches: dict[str, str]
    num_cpus: int = 8
    ports: LocalPorts = field(default_factory=LocalPorts.free)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ssb-", dir="/tmp")))
    started_s: float = 0.0

    @property
    def base_url(self) -> str:
        return self.ports.http_url

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("RAY_SERVE_THROUGHPUT", "RAY_SERVE_ENABLE_HA"))}
        return head_environment({**base, **variant_environment(self.switches, self.workdir)})

    def start(self) -> None:
        """Start head and Serve; on any failure stop whatever did start, then re-raise."""
        env = self._env()
        self.client = DashboardClient(self.ports.dashboard_url, ensure_token(env), timeout_s=30)
        began = time.perf_counter()
        try:
            start_head(self.ports, self.num_cpus, env, self.client)
            start_serve_on_loopback(ServeOptions(), self.ports, env)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.perf_counter() - began

    def deploy(self, apps: Iterable[ApplicationSpec], timeout_s: float = 300.0) -> float:
        """PUT the Serve config built from `apps`; seconds until every replica runs it."""
        document = build_serve_config(apps, ServeOptions())
        began = time.perf_counter()
        self.client.deploy(document)
        wanted = {entry["name"]: {dep["name"]: dep for dep in entry["deployments"]}
                  for entry in document["applications"]}
        deadline = began + timeout_s
        while time.perf_counter() < deadline:
            if self._settled(wanted):
                return time.perf_counter() - began
            time.sleep(0.5)
        raise DeployTimeoutError(
            f"Serve config not settled after {timeout_s:.0f} s: {self._raw_status()}")

    def _raw_status(self) -> dict[str, Any]:
        response = requests.get(
            self.ports.dashboard_url + "/api/serve/applications/",
            headers=auth_headers(self.client.token), timeout=30,
        )
        response.raise_for_status()
        status: dict[str, Any] = response.json()
        return status

    def _settled(self, wanted: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> bool:
        applications = self._raw_status().get("applications") or {}
        for app_name, deployments in wanted.items():
            app = applications.get(app_name)
            if not app or app.get("status") != "RUNNING":
                return False
            for dep_name, sent in deployments.items():
                dep = (app.get("deployments") or {}).get(dep_name)
                if not dep or dep.get("status") != "HEALTHY":
                    return False
                if not _matches(sent, dep.get("deployment_config") or {}):
                    return False
                states = [replica.get("state") for replica in dep.get("replicas") or []]
                if not states or any(state != "RUNNING" for state in states):
                    return False
        return True

    def app_info(self, route_prefix: str) -> dict[str, Any]:
        """`GET <route>/`: the apps report their live batching and observed batch sizes."""
        response = requests.get(self.base_url + route_prefix.rstrip("/") + "/", timeout=30)
        response.raise_for_status()
        info: dict[str, Any] = response.json()
        return info

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # the processes are stopped below either way
            self.client.shutdown_serve(timeout_s=60)
        stop_cluster(self.ports.gcs)
        forget_cluster_address(self.ports.gcs)
        shutil.rmtree(self.workdir, ignore_errors=True)
