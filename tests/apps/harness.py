"""The app-test harness: a real local Ray + Serve, and the three apps deployed on it.

Imported as `tests.apps.harness` by conftest and tests alike, so there is one LocalServe
and one set of exception classes (pytest imports a conftest under another module name).
The apps are deployed as production deploys them: catalog specs + overrides (the
`with_overrides` path a stack file takes) → `build_serve_config` → the Serve controller.
Test overrides pin one replica per deployment, so per-replica statistics (batch sizes)
describe the only replica there is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from infra.config import ServeOptions
from servestack.local.free_ports import free_port

os.environ["HF_HUB_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT_S = 60


class LocalServe:
    """An in-process Ray cluster with Serve's HTTP proxy on a free loopback port."""

    def __init__(self) -> None:
        self.base_url: str | None = None
        self.haproxy_dir = ""
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> str:
        if self.base_url is None:
            import ray
            from ray import serve

            # Replica processes inherit the driver's environment: make `apps` importable.
            paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
            os.environ["PYTHONPATH"] = ":".join(dict.fromkeys(paths))
            # The proxy runs servestack's ingress layer, as on a cluster (apps/ingress.py).
            from infra.ingress_environment import ingress_environment
            from infra.stack_file import load_stack
            from servestack.local.haproxy import private_haproxy_environment

            # The local stack's Serve options: its short ingress drain keeps teardown quick.
            # Restored at stop: later tests in this process must not inherit the ingress env.
            env = ingress_environment(load_stack("local").stack.serve)
            self.haproxy_dir = tempfile.mkdtemp(prefix="ssa-", dir="/tmp")  # short socket paths
            env.update(private_haproxy_environment({**os.environ, **env},
                                                   Path(self.haproxy_dir)))
            self._saved_env = {key: os.environ.get(key) for key in env}
            os.environ.update(env)
            # address="local": never attach to a `ray start` head someone else is running.
            ray.init(
                address="local", num_cpus=8, include_dashboard=False,
                logging_level="ERROR", log_to_driver=False,
            )
            port = free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    def stop(self) -> None:
        if self.base_url is None:
            return
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(self.haproxy_dir, ignore_errors=True)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.base_url = None


LOCAL_SERVE = LocalServe()


@dataclass(frozen=True)
class Checkpoints:
    seed0: Path
    seed1: Path

    @staticmethod
    def uri(path: Path) -> str:
        return path.resolve().as_uri()


APPS = ("classifier", "embeddings", "search")
DEPLOY_TIMEOUT_S = 300


class DeployFailedError(RuntimeError):
    """An application reached DEPLOY_FAILED; the message carries Ray's reason."""


def _test_overrides(app: str, checkpoint_uri: str) -> dict[str, Any]:
    one_replica = {"autoscaling": {"min_replicas": 1, "max_replicas": 1}}
    if app == "classifier":
        # The test checkpoints live in pytest's tmp dir: allow it as a file:// root.
        root = str(Path(checkpoint_uri.removeprefix("file://")).parent)
        settings = {"checkpoint_uri": checkpoint_uri, "file_roots": [root]}
        return {"TileClassifier": {**one_replica, "user_config": settings}}
    return {"Embedder": one_replica}


@dataclass(frozen=True)
class ServedApps:
    """The three apps on the test Serve, deployed the production way: a Serve config.

    `build_serve_config` turns (overridden) specs into the document `servestack serve` and
    the RayService carry; the controller applies it. As in production, a change confined
    to user_config reaches the running replicas through `reconfigure`, without a restart.
    """

    base_url: str
    serve: ServeOptions
    checkpoint_uri: str

    def url(self, app: str, path: str = "") -> str:
        from apps.catalog import CATALOG

        return self.base_url + CATALOG[app].route_prefix + path

    def specs(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[Any]:
        """The catalog apps with test overrides, then `{app: {deployment: {...}}}` on top."""
        from apps.catalog import CATALOG

        specs = []
        for name in APPS:
            spec = CATALOG[name].with_overrides(
                {"deployments": _test_overrides(name, self.checkpoint_uri)}
            )
            extra = (overrides or {}).get(name)
            if extra:
                spec = spec.with_overrides({"deployments": extra})
            specs.append(spec)
        return specs

    def deploy(self, specs: Sequence[Any]) -> None:
        """Apply the Serve config of exactly these apps and wait until all are RUNNING."""
        from ray import serve

        from infra.ray_internals import serve_deploy
        from infra.serve_config import build_serve_config

        serve_deploy(build_serve_config(specs, self.serve))
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        names = {spec.name for spec in specs}
        while time.monotonic() < deadline:
            statuses = {name: app for name, app in serve.status().applications.items()
                        if name in names}
            failed = {name: app for name, app in statuses.items()
                      if app.status == "DEPLOY_FAILED"}
            if failed:
                raise DeployFailedError("\n".join(
                    f"{name}: {app.message} "
                    + " ".join(dep.message for dep in app.deployments.values())
                    for name, app in failed.items()
                ))
            if len(statuses) == len(names) and all(
                app.status == "RUNNING" for app in statuses.values()
            ):
                return
            time.sleep(0.2)
        raise TimeoutError(f"apps {sorted(names)} not RUNNING after {DEPLOY_TIMEOUT_S}s")

    def redeploy(self, app: str | None = None, deployments: dict[str, Any] | None = None) -> None:
        """Deploy all three apps again, with `deployments` overrides for `app`."""
        self.deploy(self.specs({app: deployments} if app and deployments else None))


def post(url: str, body: Any) -> requests.Response:
    return requests.post(url, json=body, timeout=HTTP_TIMEOUT_S)
