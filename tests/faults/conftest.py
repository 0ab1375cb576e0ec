"""A real local Ray per test module, with apps deployed the way `servestack serve` does it.

The test process is the Ray driver (so it can find and `ray.kill` actors), and the apps
arrive through the dashboard's Serve REST API from the same specs → Serve config path as
the local runner and KubeRay. `address="local"` always starts a private Ray: a bare
`ray.init()` would attach to whatever `ray start` head another engineer left running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.spec import ApplicationSpec
from infra.ingress_environment import ingress_environment
from infra.serve_config import build_serve_config
from infra.stack_file import load_stack
from servestack.local.auth import ensure_token
from servestack.local.dashboard import DashboardClient
from servestack.local.free_ports import free_port
from servestack.local.haproxy import private_haproxy_environment
from servestack.local.head import head_environment
from servestack.local.rollout import wait_for_rollout

LOCAL_SERVE = load_stack("local").stack.serve
"""The local stack's Serve options (its short ingress drain included), as `servestack serve`
runs them: a harness cluster is a local stack."""
DEPLOY_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class LocalServe:
    """Where the module's Serve answers, and how to reach its actors."""

    base_url: str
    dashboard_url: str
    haproxy_dir: Path
    client: DashboardClient  # the REST path KubeRay deploys through

    def url(self, app: ApplicationSpec, path: str = "") -> str:
        return self.base_url + app.route_prefix.rstrip("/") + path

    def replica_actors(self, app: str | None = None) -> dict[str, str]:
        """ALIVE replica actors, name → actor id (optionally of one app only)."""
        from ray.util.state import list_actors

        prefix = f"ServeReplica:{app}:" if app else "ServeReplica:"
        actors = list_actors(address=self.dashboard_url, filters=[("state", "=", "ALIVE")],
                             limit=1000, raise_on_missing_output=False)
        return {actor.name or actor.actor_id: actor.actor_id for actor in actors
                if actor.class_name.startswith(prefix)}

    def deployment_status(self, app: str, deployment: str) -> tuple[str, int]:
        """(status, RUNNING replicas) of one deployment, from the controller."""
        from ray import serve

        state = serve.status().applications[app].deployments[deployment]
        running = sum(n for replica, n in state.replica_states.items() if replica == "RUNNING")
        return state.status.value, running


def build_classifier_checkpoint() -> None:
    """The classifier's default checkpoint (`make model`); a no-op when it is already built."""
    from apps.classifier.model_store import default_checkpoint_path
    from apps.classifier.training import build_checkpoint

    build_checkpoint(default_checkpoint_path())


@contextmanager
def local_serve(apps: Iterable[ApplicationSpec], num_cpus: int = 4,
                extra_env: dict[str, str] | None = None) -> Iterator[LocalServe]:
    """Start a private Ray + Serve on loopback, deploy `apps` over REST, wait for RUNNING."""
    ray = pytest.importorskip("ray")
    from ray import serve

    apps = tuple(apps)
    env = head_environment(os.environ)
    env.update(ingress_environment(LOCAL_SERVE))  # HAProxy + servestack's layer
    env.update(extra_env or {})
    haproxy_dir = Path(tempfile.mkdtemp(prefix="ssf-", dir="/tmp"))  # short: socket paths
    env.update(private_haproxy_environment(env, haproxy_dir))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            if os.environ.get(key) != value:
                patch.setenv(key, value)  # workers inherit the driver's env at ray.init
        dashboard_port, http_port = free_port(), free_port()
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True,
                 dashboard_host="127.0.0.1", dashboard_port=dashboard_port,
                 logging_level="ERROR", log_to_driver=False)
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": http_port})
            dashboard_url = f"http://127.0.0.1:{dashboard_port}"
            client = DashboardClient(dashboard_url, ensure_token(env), timeout_s=60)
            client.deploy(build_serve_config(apps, LOCAL_SERVE))
            wait_for_rollout(client, [app.name for app in apps], DEPLOY_TIMEOUT_S)
            local = LocalServe(f"http://127.0.0.1:{http_port}", dashboard_url, haproxy_dir,
                               client)
            # An app is RUNNING once each deployment has a replica; wait for all of them,
            # as the state API (eventually consistent) reports them.
            wanted = sum(dep.min_replicas for app in apps for dep in app.deployments)
            wait_until(lambda: len(local.replica_actors()) == wanted, DEPLOY_TIMEOUT_S)
            yield local
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
            shutil.rmtree(haproxy_dir, ignore_errors=True)


def wait_until(condition: Any, timeout_s: float, interval_s: float = 0.25) -> float:
    """Seconds until `condition()` was true; raises TimeoutError after `timeout_s`."""
    start = time.perf_counter()
    while True:
        try:
            if condition():
                return time.perf_counter() - start
        except Exception:
            pass
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


def _error_detail(error: BaseException) -> str:
    """The client error and its innermost cause, e.g. `ConnectionError(RemoteDisconnected)`:
    a reset, a refusal and a keep-alive closed under a request have different causes."""
    cause = error
    while cause.__context__ is not None and cause.__context__ is not cause:
        cause = cause.__context__
    while cause.args and isinstance(cause.args[-1], BaseException):
        cause = cause.args[-1]
    name = type(error).__name__
    return name if cause is error else f"{name}({type(cause).__name__})"


RETRY_AFTER = "+Retry-After"
"""Appended to an outcome's status when the answer told the client when to retry."""


@dataclass(frozen=True)
class Outcome:
    t: float  # seconds since the load started, at completion
    ok: bool
    detail: str  # "200", "503+Retry-After", or the exception's class name and its cause


class SteadyLoad:
    """`concurrency` threads POSTing `body` back to back until stopped; every outcome kept.

    Bounded in time: each request times out after `timeout_s`, and `stop` joins the threads.
    """

    def __init__(self, url: str, body: dict[str, Any], concurrency: int = 4,
                 timeout_s: float = 30.0) -> None:
        import threading

        self.url, self.body, self.timeout_s = url, body, timeout_s
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._worker, daemon=True)
                         for _ in range(concurrency)]
        self.started = time.perf_counter()

    def _worker(self) -> None:
        import requests

        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.post(self.url, json=self.body, timeout=self.timeout_s)
                    ok, detail = response.status_code == 200, str(response.status_code)
                    if "Retry-After" in response.headers:
                        detail += RETRY_AFTER
                except requests.RequestException as error:
                    ok, detail = False, _error_detail(error)
                with self._lock:
                    self.outcomes.append(Outcome(time.perf_counter() - self.started, ok, detail))

    def __enter__(self) -> SteadyLoad:
        self.started = time.perf_counter()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 5)

    def now(self) -> float:
        return time.perf_counter() - self.started

    def between(self, start: float, end: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.t < end]

    def timeline(self, bucket_s: float = 1.0) -> str:
        """One line per `bucket_s`: completions, ok and failed, to print next to a fault."""
        with self._lock:
            outcomes = list(self.outcomes)
        buckets: dict[int, list[Outcome]] = {}
        for outcome in outcomes:
            buckets.setdefault(int(outcome.t // bucket_s), []).append(outcome)
        lines = ["   t(s)   ok  failed"]
        for index in range(max(buckets, default=-1) + 1):
            chunk = buckets.get(index, [])
            lines.append(f"  {index * bucket_s:5.1f}  {sum(o.ok for o in chunk):4d}  "
                         f"{sum(not o.ok for o in chunk):6d}")
        return "\n".join(lines)

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if not o.ok]
