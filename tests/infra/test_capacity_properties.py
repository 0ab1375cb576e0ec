"""Property tests: for random stacks the plan either refuses or never under-provisions, and it
never refuses a stack whose replicas each fit a node of their pool when pools may grow."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from infra.capacity import CapacityError, CapacityPlan, plan_capacity
from infra.config import StackConfig, StackConfigError, parse_stack_config

GiB = 1024**3
MiB = 1024**2
EPS = 1e-9
PROPERTY = settings(max_examples=120, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

APPS = {"embeddings": ["Embedder"], "classifier": ["TileClassifier"],
        "search": ["SearchIngress", "Embedder", "VectorIndex"]}
GPU_RESOURCES = ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"]
RAY_TYPES = [None, "L4", "A100"]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@st.composite
def replicas(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"num_replicas": draw(st.integers(1, 6)), "autoscaling": None}
    low = draw(st.integers(0, 3))
    high = draw(st.integers(max(low, 1), 12))
    scaling: dict[str, Any] = {"min_replicas": low, "max_replicas": high}
    if draw(st.booleans()):
        scaling["initial_replicas"] = draw(st.integers(low, high))
    return {"num_replicas": None, "autoscaling": scaling}


@st.composite
def resources(draw: st.DrawFn, gpu_choices: list[tuple[str, str | None]]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "num_cpus": draw(st.sampled_from([0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 8])),
        "memory": draw(st.sampled_from([0, 256 * MiB, GiB, 2 * GiB, 6 * GiB, 16 * GiB])),
    }
    if gpu_choices and draw(st.integers(0, 2)) == 0:
        resource, ray_type = draw(st.sampled_from(gpu_choices))
        res.update(num_gpus=draw(st.sampled_from([0.25, 0.4, 0.5, 1, 2])),
                   accelerator_resource=resource)
        if ray_type is not None and draw(st.booleans()):
            res["accelerator_type"] = ray_type
    return res


@st.composite
def cpu_pool(draw: st.DrawFn, name: str, max_nodes: st.SearchStrategy[int]) -> dict[str, Any]:
    return {"name": name, "cpu": draw(st.sampled_from([2, 3.92, 4, 8, 16, 32])),
            "memory": draw(st.sampled_from([4, 8, 15, 32, 64])) * GiB,
            "labels": {"servestack.io/pool": name}, "max_nodes": draw(max_nodes)}


@st.composite
def gpu_pool(draw: st.DrawFn, name: str, resource: str,
             max_nodes: st.SearchStrategy[int]) -> dict[str, Any]:
    accelerator = {"resource": resource, "count": draw(st.sampled_from([1, 2, 4, 8])),
                   "ray_type": draw(st.sampled_from(RAY_TYPES))}
    return {"name": name, "cpu": draw(st.sampled_from([4, 8, 16, 48])),
            "memory": draw(st.sampled_from([16, 32, 64, 192])) * GiB,
            "accelerator": accelerator, "labels": {"servestack.io/pool": name},
            "taints": [GPU_TAINT] if draw(st.booleans()) else [],
            "min_nodes": 0, "max_nodes": draw(max_nodes)}


@st.composite
def stacks(draw: st.DrawFn, growable: bool = False) -> dict[str, Any]:
    """A stack document; `growable` pools have one plain CPU pool, one pool per GPU resource
    and room for any number of nodes."""
    max_nodes = st.just(100_000) if growable else st.integers(1, 12)
    pools = [draw(cpu_pool(f"cpu-{i}", max_nodes))
             for i in range(1 if growable else draw(st.integers(1, 2)))]
    resources_offered = draw(st.lists(st.sampled_from(GPU_RESOURCES), unique=True, max_size=2))
    for i, resource in enumerate(resources_offered):
        pools.append(draw(gpu_pool(f"gpu-{i}", resource, max_nodes)))
    offered = [(p["accelerator"]["resource"], p["accelerator"]["ray_type"])
               for p in pools if "accelerator" in p]
    wanted = offered if growable else [(r, t) for r in GPU_RESOURCES for t in RAY_TYPES]
    names = draw(st.lists(st.sampled_from(sorted(APPS)), min_size=1, unique=True))
    apps = {app: {"deployments": {dep: {"resources": draw(resources(wanted)), **draw(replicas())}
                                  for dep in APPS[app]}}
            for app in names}
    return {
        "cluster": {"backend": "kind"},
        "pools": pools,
        "image": {"repository": "localhost/servestack"},
        "rayservice": {
            "upgrade_strategy": draw(st.sampled_from(
                ["None", "NewCluster", "NewClusterWithIncrementalUpgrade"])),
            "head": {"cpu": draw(st.sampled_from([0.5, 1, 2])),
                     "memory": draw(st.sampled_from([1, 2, 3])) * GiB},
            "worker_overhead": {"cpu": draw(st.sampled_from([0.1, 0.25, 0.5, 1])),
                                "memory": draw(st.sampled_from([256 * MiB, GiB, 2 * GiB]))},
        },
        "apps": apps,
    }


def parse(document: dict[str, Any]) -> StackConfig:
    try:
        return parse_stack_config("prop", document)
    except StackConfigError:
        assume(False)  # e.g. a fractional num_gpus above 1 is a config error, not capacity's
        raise


def check_never_under_provisions(config: StackConfig, plan: CapacityPlan) -> None:
    overhead = config.rayservice.worker_overhead
    placed = sorted((d.app, d.deployment) for g in plan.worker_groups for d in g.deployments)
    assert placed == sorted((a.name, d.name) for a in config.applications for d in a.deployments)
    for group in plan.worker_groups:
        pool = config.pool(group.pool)
        assert group.pod.cpus <= pool.cpu + EPS and group.pod.memory <= pool.memory
        assert group.pod.devices <= pool.gpus
        assert math.isclose(group.pod.cpus, group.ray.whole_cpus + overhead.cpu)
        assert group.pod.memory == group.ray.memory + overhead.memory
        assert group.ray.devices == group.pod.devices
        assert group.tolerations == pool.taints and group.node_selector == pool.labels
        # One pod per node: after its overhead a pod leaves no whole CPU of the node unused,
        # unless it leaves room for the head beside it.
        spare = pool.cpu - group.pod.cpus
        assert spare < 1 + EPS or plan.pool(group.pool).hosts_head
        assert group.min_pods <= group.initial_pods <= group.max_pods
        assert (group.min_pods == 0) == all(d.min_replicas == 0 for d in group.deployments)
        for dep in group.deployments:
            spec = next(a for a in config.applications if a.name == dep.app).deployment(
                dep.deployment)
            if spec.resources.is_gpu:
                assert pool.accelerator is not None
                assert pool.accelerator.resource == spec.resources.accelerator_resource
                assert group.accelerator_resource == pool.accelerator.resource
                if spec.resources.accelerator_type:
                    assert pool.accelerator.ray_type == spec.resources.accelerator_type
            # every replica is placeable in one pod of its group
            assert dep.num_cpus <= group.ray.cpus and dep.memory <= group.ray.memory
            assert math.ceil(dep.num_gpus) <= group.ray.devices
            assert dep.replicas_per_pod >= 1
        # the worst case fits the group's max pods
        for need, per_pod in ((lambda d: d.num_cpus, group.ray.cpus),
                              (lambda d: d.memory, group.ray.memory),
                              (lambda d: d.num_gpus, group.ray.devices)):
            total = sum(d.max_replicas * need(d) for d in group.deployments)
            assert total <= group.max_pods * per_pod + EPS
    for pool_plan in plan.pools:
        pool = config.pool(pool_plan.pool)
        assert pool_plan.nodes_needed <= pool.max_nodes
        assert pool_plan.nodes_needed <= pool_plan.nodes_needed_during_upgrade
        pods = [(g.pod, g.max_pods) for g in plan.worker_groups if g.pool == pool.name]
        if pool_plan.hosts_head:
            pods.append((plan.head.pod, 1))
        for size, capacity in ((lambda p: p.cpus, pool.cpu), (lambda p: p.memory, pool.memory),
                               (lambda p: p.devices, pool.gpus)):
            total = sum(size(pod) * n for pod, n in pods)
            if total:
                assert pool_plan.nodes_needed >= math.ceil(total / capacity - EPS)
    head = config.pool(plan.head.pool)
    assert head.accelerator is None and not head.taints


@PROPERTY
@given(stacks())
def test_plan_refuses_or_never_under_provisions(document: dict[str, Any]) -> None:
    config = parse(document)
    try:
        plan = plan_capacity(config)
    except CapacityError as error:
        event("refused")
        assert error.problems
        assert all(message for _, message in error.problems)
        return
    event("planned")
    check_never_under_provisions(config, plan)


def _replica_fits_its_pool(config: StackConfig) -> bool:
    overhead = config.rayservice.worker_overhead
    for app in config.applications:
        for dep in app.deployments:
            res = dep.resources
            pools = [p for p in config.pools
                     if (p.accelerator is None and p.taints == () and not res.is_gpu)
                     or (res.is_gpu and p.accelerator is not None
                         and p.accelerator.resource == res.accelerator_resource
                         and res.accelerator_type in (None, p.accelerator.ray_type))]
            if not any(math.ceil(res.num_cpus) + overhead.cpu <= p.cpu
                       and res.memory + overhead.memory <= p.memory
                       and math.ceil(res.num_gpus) <= p.gpus for p in pools):
                return False
    return True


def _head_fits(config: StackConfig) -> bool:
    rs = config.rayservice
    pool = config.pools[0]
    return (rs.head.cpu + rs.autoscaler.resources.cpu <= pool.cpu
            and rs.head.memory + rs.autoscaler.resources.memory <= pool.memory)


@PROPERTY
@given(stacks(growable=True))
def test_plan_accepts_every_replica_that_fits_a_node_when_pools_can_grow(
    document: dict[str, Any],
) -> None:
    config = parse(document)
    assume(_replica_fits_its_pool(config) and _head_fits(config))
    plan = plan_capacity(config)
    check_never_under_provisions(config, plan)


def test_a_larger_load_never_plans_fewer_pods() -> None:
    """The case hypothesis found: first-fit decreasing packed the 1 initial search Embedder
    with the rest into 4 pods but all 3 of them into 3, so initial_pods exceeded max_pods."""
    fixed = {"num_replicas": None, "autoscaling": None}
    document: dict[str, Any] = {
        "cluster": {"backend": "kind"},
        "pools": [{"name": "cpu-0", "cpu": 8, "memory": 32 * 1024**3,
                   "labels": {"servestack.io/pool": "cpu-0"}, "max_nodes": 100000}],
        "image": {"repository": "localhost/servestack"},
        "rayservice": {"upgrade_strategy": "None",
                       "head": {"cpu": 0.5, "memory": 1024**3},
                       "worker_overhead": {"cpu": 0.1, "memory": 256 * 1024**2}},
        "apps": {
            "classifier": {"deployments": {"TileClassifier": {
                **fixed, "resources": {"num_cpus": 1.5, "memory": 0}, "num_replicas": 5}}},
            "embeddings": {"deployments": {"Embedder": {
                **fixed, "resources": {"num_cpus": 0, "memory": 0}, "num_replicas": 1}}},
            "search": {"deployments": {
                "SearchIngress": {**fixed, "resources": {"num_cpus": 1, "memory": 16 * 1024**3},
                                  "num_replicas": 2},
                "Embedder": {"resources": {"num_cpus": 2, "memory": 0}, "num_replicas": None,
                             "autoscaling": {"min_replicas": 0, "max_replicas": 3,
                                             "initial_replicas": 1}},
                "VectorIndex": {**fixed, "resources": {"num_cpus": 2, "memory": 0},
                                "num_replicas": 1},
            }},
        },
    }
    plan = plan_capacity(parse(document))
    for group in plan.worker_groups:
        assert group.min_pods <= group.initial_pods <= group.max_pods, group.name
