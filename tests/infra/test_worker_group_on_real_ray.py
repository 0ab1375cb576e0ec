"""A rendered worker group's `ray start`, on real Ray: the raylet's object store and its
`memory` resource are what the plan counts, and together fit the pod's memory limit.

Each group of the prod stack starts as its own private head (free ports, its own temp dir)
with the flags KubeRay derives from the group: rayStartParams, and the typed `resources` as
`--resources`. Only the processes under that temp dir are stopped, never `ray stop`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from infra.capacity import WorkerGroupPlan
from infra.config import STACKS_DIR
from infra.quantities import memory_quantity
from infra.stack_file import load_stack
from infra.worker_groups import ray_cluster_config
from servestack.local.head import ray_executable
from servestack.rehearse.cluster import FakeCluster, RehearsalPorts, stop

pytestmark = pytest.mark.ray

STACK = "prod"
_READ = """
import json, ray
ray.init(address="{address}", log_to_driver=False)
print(json.dumps(ray.nodes()[0]["Resources"]))
"""


def _groups() -> list[tuple[WorkerGroupPlan, dict[str, Any]]]:
    valid = load_stack(STACK, STACKS_DIR)
    specs = ray_cluster_config(valid.stack, valid.plan)["workerGroupSpecs"]
    return list(zip(valid.plan.worker_groups, specs, strict=True))


def _ray_start_flags(spec: Mapping[str, Any]) -> list[str]:
    """What KubeRay's `ray start` gets from a group: each rayStartParam as a flag (metrics
    ports aside: this head has its own), the typed resources as `--resources`."""
    flags = [f"--{key}={value}" for key, value in sorted(spec["rayStartParams"].items())
             if key != "metrics-export-port"]
    if spec.get("resources"):
        typed = {key: float(value) for key, value in spec["resources"].items()}
        flags.append(f"--resources={json.dumps(typed)}")
    return flags


def _env(temp_dir: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_AUTH_TOKEN", "CUDA_VISIBLE_DEVICES"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_TMPDIR=str(temp_dir),
               RAY_memory_monitor_refresh_ms="0")
    return env


def _node_resources(spec: Mapping[str, Any]) -> Iterator[dict[str, float]]:
    temp_dir = Path(tempfile.mkdtemp(prefix="sso-", dir="/tmp"))
    ports = RehearsalPorts.free()
    env = _env(temp_dir, secrets.token_hex(32))
    cluster = FakeCluster(temp_dir=temp_dir, ports=ports, token=env["RAY_AUTH_TOKEN"], env=env)
    argv = [ray_executable(), "start", "--head", *ports.head.ray_start_flags(),
            f"--ray-client-server-port={ports.client}",
            f"--dashboard-agent-listen-port={ports.dashboard_agent}",
            "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats",
            *_ray_start_flags(spec)]
    try:
        started = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180,
                                 start_new_session=True, check=False)
        assert started.returncode == 0, started.stdout + started.stderr
        read = subprocess.run([sys.executable, "-c", _READ.format(
            address=ports.head.gcs_address)], env=env, capture_output=True, text=True,
            timeout=120, check=False)
        assert read.returncode == 0, read.stderr
        yield json.loads(read.stdout.strip().splitlines()[-1])
    finally:
        stop(cluster)


@pytest.mark.parametrize("index", range(len(_groups())))
def test_the_raylet_holds_what_the_plan_counts_inside_the_pod_limit(index: int) -> None:
    group, spec = _groups()[index]
    limit = spec["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit == memory_quantity(group.pod.memory)
    assert group.object_store_memory < group.overhead.memory
    assert group.to_output()["object_store_memory"] == group.object_store_memory

    for node in _node_resources(spec):
        assert node["object_store_memory"] == pytest.approx(group.object_store_memory, rel=0.01)
        assert node["memory"] == pytest.approx(group.ray.memory, rel=0.01)
        # Ray's two shares, and what the plan leaves the raylet and agents, fill the limit.
        rest = group.overhead.memory - group.object_store_memory
        assert node["memory"] + node["object_store_memory"] + rest <= group.pod.memory * 1.001
        assert node["CPU"] == group.ray.whole_cpus and node.get("GPU", 0) == group.ray.devices
        for key, value in (spec.get("resources") or {}).items():
            assert node[key] == float(value)  # the typed resources reach the raylet
