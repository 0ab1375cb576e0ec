"""The capacity plan, rule by rule, on small stacks built from dicts and on broken stack files."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from infra.capacity import (
    CapacityError,
    CapacityPlan,
    DeploymentPlacement,
    PoolPlan,
    ResourceVector,
    WorkerGroupPlan,
    group_name,
    operator_pods,
    plan_capacity,
)
from infra.config import StackConfig, StackConfigError, parse_stack_config
from infra.stack_file import load_stack_config, read_stack_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GiB = 1024**3

CPU_POOL: dict[str, Any] = {
    "name": "cpu", "cpu": 8, "memory": "32GiB", "labels": {"servestack.io/pool": "cpu"},
    "max_nodes": 10,
}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def gpu_pool(name: str, resource: str = "nvidia.com/gpu", count: int = 1,
             ray_type: str | None = None, **extra: Any) -> dict[str, Any]:
    accelerator: dict[str, Any] = {"resource": resource, "count": count}
    if ray_type:
        accelerator["ray_type"] = ray_type
    return {"name": name, "cpu": 16, "memory": "64GiB", "accelerator": accelerator,
            "labels": {"servestack.io/pool": name}, "taints": [GPU_TAINT], "max_nodes": 10,
            **extra}


def stack(pools: list[dict[str, Any]] | None = None, apps: dict[str, Any] | None = None,
          **rayservice: Any) -> StackConfig:
    return parse_stack_config("test", {
        "cluster": {"backend": "kind"},
        "pools": pools if pools is not None else [CPU_POOL],
        "image": {"repository": "localhost/servestack"},
        "rayservice": {"upgrade_strategy": "None",
                       "worker_overhead": {"cpu": 0.5, "memory": "1GiB"}, **rayservice},
        "apps": apps if apps is not None else {"embeddings": {}},
    })


def embedder(min_replicas: int = 1, max_replicas: int = 1, **resources: Any) -> dict[str, Any]:
    """The embeddings app with its one deployment resized."""
    return {"embeddings": {"deployments": {"Embedder": {
        "resources": {"memory": "1GiB", **resources},
        "autoscaling": {"min_replicas": min_replicas, "max_replicas": max_replicas},
    }}}}


def gpu(num_gpus: float, resource: str = "nvidia.com/gpu", accelerator_type: str | None = None,
        **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"num_cpus": 1, "num_gpus": num_gpus, "memory": "4GiB",
                           "accelerator_resource": resource, **extra}
    if accelerator_type:
        res["accelerator_type"] = accelerator_type
    return {"resources": res}


def problems_of(config: StackConfig) -> dict[str, str]:
    with pytest.raises(CapacityError) as caught:
        plan_capacity(config)
    return dict(caught.value.problems)


def load_fixture(name: str) -> StackConfig:
    path = FIXTURES / f"{name}.yaml"
    return parse_stack_config(name, read_stack_file(path))


# --- grouping -------------------------------------------------------------------------------


def test_cpu_deployments_share_one_cpu_group() -> None:
    plan = plan_capacity(stack(apps={"embeddings": {}, "search": {}}))
    assert [g.name for g in plan.worker_groups] == ["cpu"]
    placed = {(d.app, d.deployment) for d in plan.group("cpu").deployments}
    assert placed == {("embeddings", "Embedder"), ("search", "SearchIngress"),
                      ("search", "Embedder"), ("search", "VectorIndex")}


def test_gpu_deployments_get_one_group_per_accelerator_resource_and_type() -> None:
    plan = plan_capacity(stack(
        pools=[CPU_POOL, gpu_pool("gpu-l4", ray_type="L4"),
               gpu_pool("mig", resource="nvidia.com/mig-1g.10gb", count=7)],
        apps={
            "embeddings": {"deployments": {"Embedder": gpu(1, accelerator_type="L4")}},
            "classifier": {"deployments": {"TileClassifier": gpu(1, "nvidia.com/mig-1g.10gb")}},
            "search": {},
        },
    ))
    assert [(g.name, g.pool) for g in plan.worker_groups] == [
        ("cpu", "cpu"),
        ("gpu-nvidia-com-gpu-l4", "gpu-l4"),
        ("gpu-nvidia-com-mig-1g-10gb", "mig"),
    ]
    mig = plan.group("gpu-nvidia-com-mig-1g-10gb")
    assert mig.accelerator_resource == "nvidia.com/mig-1g.10gb"
    assert [d.deployment for d in mig.deployments] == ["TileClassifier"]


def test_group_names_are_short_dns_labels_and_stable() -> None:
    long_resource = "accelerators.example.com/" + "x" * 60
    names = {group_name(long_resource, "T1"), group_name(long_resource, "T2")}
    assert len(names) == 2, "different shapes must not collide after truncation"
    for name in names:
        assert len(name) <= 40
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert group_name(long_resource, "T1") == group_name(long_resource, "T1")
    assert group_name(None) == "cpu"


# --- choosing pools --------------------------------------------------------------------------


def test_gpu_group_lands_on_the_pool_with_its_ray_accelerator_type() -> None:
    pools = [CPU_POOL, gpu_pool("gpu-a100", ray_type="A100"), gpu_pool("gpu-l4", ray_type="L4")]
    typed = plan_capacity(stack(pools=pools, apps={"embeddings": {"deployments": {
        "Embedder": gpu(1, accelerator_type="L4")}}}))
    assert typed.group("gpu-nvidia-com-gpu-l4").pool == "gpu-l4"
    untyped = plan_capacity(stack(pools=pools, apps={"embeddings": {"deployments": {
        "Embedder": gpu(1)}}}))
    assert untyped.group("gpu-nvidia-com-gpu").pool == "gpu-a100", "first matching pool"


def test_gpu_deployment_without_a_gpu_pool_is_rejected_with_the_fix() -> None:
    problems = problems_of(stack(apps={"embeddings": {"deployments": {"Embedder": gpu(1)}}}))
    message = problems["apps.embeddings.deployments.Embedder.resources"]
    assert "requests 1 nvidia.com/gpu but no pool provides it" in message
    assert "add a pool with accelerator: {resource: nvidia.com/gpu}" in message


def test_gpu_deployment_with_an_unavailable_accelerator_type_is_rejected() -> None:
    problems = problems_of(stack(
        pools=[CPU_POOL, gpu_pool("gpu-l4", ray_type="L4")],
        apps={"embeddings": {"deployments": {"Embedder": gpu(1, accelerator_type="A100")}}},
    ))
    message = problems["apps.embeddings.deployments.Embedder.resources"]
    assert "accelerator pools: gpu-l4 (nvidia.com/gpu, ray_type L4)" in message
    assert "{resource: nvidia.com/gpu, ray_type: A100}" in message


def test_cpu_group_and_head_avoid_accelerator_and_tainted_pools() -> None:
    untainted_gpu = gpu_pool("gpu", taints=[])
    dedicated = {**CPU_POOL, "name": "dedicated", "labels": {"pool": "dedicated"},
                 "taints": [{"key": "dedicated", "value": "batch"}]}
    plan = plan_capacity(stack(pools=[untainted_gpu, dedicated, CPU_POOL]))
    assert plan.group("cpu").pool == "cpu"
    assert plan.head.pool == "cpu"
    assert plan.group("cpu").tolerations == ()


def test_cpu_pool_setting_places_cpu_replicas_on_a_tainted_pool_tolerating_its_taints() -> None:
    ray_cpu = {**CPU_POOL, "name": "ray-cpu", "labels": {"servestack.io/pool": "ray-cpu"},
               "taints": [{"key": "dedicated", "value": "ray", "effect": "NoExecute"}]}
    system = {**CPU_POOL, "name": "system", "labels": {"servestack.io/pool": "system"}}
    config = stack(pools=[system, ray_cpu], cpu_pool="ray-cpu")
    plan = plan_capacity(config)
    group = plan.group("cpu")
    assert group.pool == "ray-cpu"
    assert group.tolerations == config.pool("ray-cpu").taints
    assert group.node_selector == {"servestack.io/pool": "ray-cpu"}
    assert plan.head.pool == "system"
    assert plan.head.node_selector == {"servestack.io/pool": "system"}


def test_unknown_cpu_pool_is_rejected_with_the_known_pools() -> None:
    problems = problems_of(stack(cpu_pool="nope"))
    assert problems["rayservice.cpu_pool"] == "no pool named 'nope'; choose one of: cpu"


# --- the resource vector ----------------------------------------------------------------------


def test_gpu_fractions_are_counted_per_device() -> None:
    """Three devices hold six 0.4-GPU replicas, not 7.5: a fraction never spans two devices."""
    fraction = ResourceVector(gpu=4_000)
    assert fraction.count_in(ResourceVector.whole(cpus=0, memory=0, devices=3)) == 6
    assert ResourceVector(gpu=20_000).count_in(ResourceVector.whole(0, 0, 5)) == 2
    assert fraction.devices == 1 and ResourceVector(gpu=20_000).devices == 2


def test_resource_vectors_add_scale_and_name_what_a_room_lacks() -> None:
    replica = ResourceVector(cpu=5_000, memory=GiB)
    assert replica * 3 + ResourceVector(cpu=5_000) == ResourceVector(cpu=20_000, memory=3 * GiB)
    node = ResourceVector.whole(cpus=4, memory=2 * GiB, devices=0)
    assert (replica * 2).fits(node)
    assert (replica * 3).lacking(node) == ("memory",)
    assert ResourceVector(cpu=50_000, memory=4 * GiB, gpu=1).lacking(node) == (
        "cpu", "memory", "gpu")


# --- sizing pods ------------------------------------------------------------------------------


def test_a_worker_pod_fills_one_node_after_its_overhead() -> None:
    pools = [CPU_POOL, gpu_pool("gpu", count=2)]
    plan = plan_capacity(stack(pools=pools, apps={"embeddings": {"deployments": {"Embedder": {
        **gpu(1), "autoscaling": {"min_replicas": 1, "max_replicas": 3}}}}}))
    group = plan.group("gpu-nvidia-com-gpu")
    # A 16-CPU, 64GiB, 2-GPU node less the 0.5-CPU, 1GiB overhead.
    assert group.ray == ResourceVector.whole(cpus=15, memory=63 * GiB, devices=2)
    assert group.pod.cpus == 15.5 and group.pod.memory == 64 * GiB
    assert group.deployments[0].replicas_per_pod == 2
    assert (group.min_pods, group.initial_pods, group.max_pods) == (1, 1, 2)


def test_on_the_heads_pool_a_worker_pod_leaves_room_for_the_head_and_operator() -> None:
    plan = plan_capacity(stack(apps=embedder(1, 3, num_cpus=1, memory="2GiB")))
    group = plan.group("cpu")
    beside = plan.head.pod + sum(operator_pods(stack()), ResourceVector())
    room = ResourceVector.of_node(stack().pools[0]) - group.overhead - beside
    assert group.ray == ResourceVector.whole(cpus=room.cpu // 10_000,
                                             memory=room.memory // 2**20 * 2**20, devices=0)
    assert plan.pool("cpu").nodes_needed_at_min == 1, "the head shares the first node"


def test_a_worker_pod_does_not_depend_on_which_apps_run() -> None:
    """KubeRay replaces the cluster when a pod template changes: adding, removing or
    resizing an app must leave every worker group's pod as it was."""
    one = plan_capacity(stack(apps=embedder(1, 3, num_cpus=1)))
    more = plan_capacity(stack(apps={**embedder(2, 9, num_cpus=2, memory="6GiB"),
                                     "classifier": {}, "search": {}}))
    assert one.group("cpu").pod == more.group("cpu").pod
    assert one.group("cpu").ray == more.group("cpu").ray
    assert more.group("cpu").max_pods > one.group("cpu").max_pods


def test_ray_gets_whole_cpus_so_a_fractional_node_rounds_the_pod_down() -> None:
    pools = [CPU_POOL, gpu_pool("gpu", cpu=7.8)]
    group = plan_capacity(stack(pools=pools, apps={"embeddings": {"deployments": {"Embedder": {
        **gpu(1, num_cpus=0.5)}}}})).group("gpu-nvidia-com-gpu")
    assert group.ray.cpus == 7, "ray start --num-cpus takes an integer"
    assert group.pod.cpus == group.ray.cpus + 0.5


def test_the_removed_max_replicas_per_pod_is_refused_with_the_fix() -> None:
    with pytest.raises(StackConfigError) as refused:
        stack(max_replicas_per_pod=4)
    assert "servestack:rayservice.max_replicas_per_pod: " in str(refused.value)
    assert "delete this key" in str(refused.value)


def test_fractional_gpus_share_a_device_but_never_span_two() -> None:
    pools = [CPU_POOL, gpu_pool("gpu", count=2)]
    group = plan_capacity(stack(
        pools=pools,
        apps={"embeddings": {"deployments": {"Embedder": {
            **gpu(0.4), "autoscaling": {"min_replicas": 1, "max_replicas": 5}}}}},
    )).group("gpu-nvidia-com-gpu")
    # 5 x 0.4 = 2.0 GPUs, but a device holds two 0.4s: the fifth needs a second pod.
    assert (group.pod.devices, group.ray.devices, group.max_pods) == (2, 2, 2)
    assert group.deployments[0].replicas_per_pod == 4


def test_whole_gpu_replicas_take_whole_devices_and_pods_stay_within_a_node() -> None:
    pools = [CPU_POOL, gpu_pool("gpu", count=4)]
    plan = plan_capacity(stack(pools=pools, apps={"embeddings": {"deployments": {"Embedder": {
        **gpu(2), "autoscaling": {"min_replicas": 1, "max_replicas": 3}}}}}))
    group = plan.group("gpu-nvidia-com-gpu")
    assert (group.pod.devices, group.max_pods, group.min_pods) == (4, 2, 1)
    assert plan.pool("gpu").gpus_needed == 8
    assert plan.pool("gpu").nodes_needed == 2


def test_scale_to_zero_deployments_need_no_pods_at_min() -> None:
    plan = plan_capacity(stack(apps=embedder(0, 4, num_cpus=1)))
    assert plan.group("cpu").min_pods == 0
    assert plan.group("cpu").max_pods >= 1
    assert plan.pool("cpu").nodes_needed_at_min == 1, "only the head pod and the operator"


def test_replica_larger_than_every_node_is_rejected_with_its_need_and_the_allocatable() -> None:
    problems = problems_of(load_fixture("broken-replica-too-large"))
    message = problems["apps.classifier.deployments.TileClassifier.resources"]
    assert "one replica needs 6 CPU, 20GiB" in message
    assert "its pod needs 6.5 CPU, 21GiB" in message
    assert "a node of pool 'cpu' has allocatable 3.92 CPU, 15GiB" in message


def test_replica_with_more_gpus_than_a_node_has_is_rejected() -> None:
    problems = problems_of(stack(pools=[CPU_POOL, gpu_pool("gpu", count=1)],
                                 apps={"embeddings": {"deployments": {"Embedder": gpu(2)}}}))
    message = problems["apps.embeddings.deployments.Embedder.resources"]
    assert "2 nvidia.com/gpu" in message and "1 nvidia.com/gpu" in message
    assert "accelerator.count" in message


def test_replica_too_large_names_only_the_node_fields_that_fall_short() -> None:
    problems = problems_of(stack(apps=embedder(memory="40GiB")))
    message = problems["apps.embeddings.deployments.Embedder.resources"]
    assert message.endswith("give pools[cpu] larger nodes (memory)")


# --- pools ----------------------------------------------------------------------------------


def test_pool_too_small_for_the_worst_case_says_how_many_nodes_it_needs() -> None:
    problems = problems_of(load_fixture("broken-pool-too-small"))
    message = problems["pools[cpu].max_nodes"]
    assert "needs 5 nodes" in message and "max_nodes is 3; raise max_nodes to 5" in message


def test_head_pod_occupies_its_pool() -> None:
    small = {**CPU_POOL, "cpu": 4, "memory": "16GiB"}
    plan = plan_capacity(stack(pools=[small], apps=embedder(1, 3, num_cpus=1)))
    # The 3.5-CPU worker pod and the 1.5-CPU head (with autoscaler sidecar) cannot share.
    assert plan.group("cpu").max_pods == 1
    assert plan.pool("cpu").hosts_head
    assert plan.pool("cpu").nodes_needed == 2
    assert plan.head.pod == ResourceVector(cpu=15_000, memory=int(4.5 * GiB))


def test_head_pod_larger_than_its_pool_nodes_is_rejected() -> None:
    problems = problems_of(stack(head={"cpu": 16, "memory": "8GiB"}))
    assert "the head pod" in problems["rayservice.head"]
    assert "a node of pool 'cpu' has allocatable 8 CPU, 32GiB" in problems["rayservice.head"]


def test_stack_without_a_plain_pool_is_rejected() -> None:
    problems = problems_of(load_fixture("broken-no-head-pool"))
    assert set(problems) == {"pools"}
    assert "the Ray head pod and the CPU deployments" in problems["pools"]
    assert "apps.search.deployments.VectorIndex" in problems["pools"]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(stack(
        pools=[{**CPU_POOL, "max_nodes": 1}],
        apps={
            "embeddings": {"deployments": {"Embedder": gpu(1)}},
            "classifier": {"deployments": {"TileClassifier": {"resources": {"num_cpus": 64}}}},
            "search": {"deployments": {"Embedder": {
                "resources": {"num_cpus": 2},
                "autoscaling": {"min_replicas": 1, "max_replicas": 20}}}},
        },
    ))
    assert set(problems) == {
        "apps.embeddings.deployments.Embedder.resources",
        "apps.classifier.deployments.TileClassifier.resources",
        "pools[cpu].max_nodes",
    }


def test_error_message_names_every_field_with_the_servestack_prefix() -> None:
    with pytest.raises(CapacityError) as caught:
        plan_capacity(load_fixture("broken-pool-too-small"))
    assert str(caught.value).startswith("stack 'broken-pool-too-small': capacity plan does not")
    assert "\n  servestack:pools[cpu].max_nodes: " in str(caught.value)


def test_idle_tainted_pool_with_min_nodes_is_rejected() -> None:
    problems = problems_of(load_fixture("broken-taint-no-toleration"))
    message = problems["pools[gpu-l4].taints"]
    assert "nothing tolerates its taints (nvidia.com/gpu=present:NoSchedule)" in message
    assert "set min_nodes: 0" in message


def test_idle_tainted_pool_at_zero_nodes_only_warns() -> None:
    plan = plan_capacity(stack(pools=[CPU_POOL, gpu_pool("gpu-l4", min_nodes=0)]))
    assert any(w.startswith("pools[gpu-l4] is tainted") for w in plan.warnings)
    assert plan.pool("gpu-l4").nodes_needed == 0


def test_pools_without_labels_warn_that_pods_may_land_elsewhere() -> None:
    bare = {k: v for k, v in CPU_POOL.items() if k != "labels"}
    plan = plan_capacity(stack(pools=[bare, gpu_pool("gpu-l4", min_nodes=0)]))
    assert any(w.startswith("pools[cpu] has no labels") for w in plan.warnings)
    assert plan.group("cpu").node_selector == {}


# --- upgrades -------------------------------------------------------------------------------


def _upgrade_plan(strategy: str) -> CapacityPlan:
    small = {**CPU_POOL, "cpu": 4, "memory": "64GiB", "max_nodes": 5}
    config = stack(pools=[small], upgrade_strategy="NewCluster", apps=embedder(1, 6, num_cpus=1))
    # The model refuses NewClusterWithIncrementalUpgrade until its options are modelled; the
    # plan already sizes its surge, so set it past validation here.
    rayservice = config.rayservice.model_copy(update={"upgrade_strategy": strategy})
    return plan_capacity(config.model_copy(update={"rayservice": rayservice}))


def test_upgrade_surge_depends_on_the_strategy() -> None:
    # Worst case: two 3.5-CPU pods (3 replicas each) + head 1.5 + operator 0.1 on 4-CPU nodes.
    none, new, incremental = (_upgrade_plan(s).pool("cpu") for s in
                              ("None", "NewCluster", "NewClusterWithIncrementalUpgrade"))
    assert none.nodes_needed == none.nodes_needed_during_upgrade == 3
    # NewCluster: the new cluster adds a head and one pod for its initial replica.
    assert new.nodes_needed_during_upgrade == 4
    # Incremental upgrades may surge to a full second cluster (maxSurgePercent 100).
    assert incremental.nodes_needed_during_upgrade == 5


def test_new_cluster_upgrade_short_of_nodes_warns_with_the_missing_count() -> None:
    small = {**CPU_POOL, "cpu": 4, "memory": "64GiB", "max_nodes": 3}
    plan = plan_capacity(stack(pools=[small], upgrade_strategy="NewCluster",
                               apps=embedder(1, 6, num_cpus=1)))
    assert plan.pool("cpu").upgrade_shortfall == 1
    [warning] = [w for w in plan.warnings if "upgrade" in w]
    assert "needs 4 nodes; max_nodes is 3, 1 short" in warning
    assert not [w for w in _upgrade_plan("None").warnings if "upgrade" in w]


# --- output ---------------------------------------------------------------------------------


def _keys_sorted(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(_keys_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(_keys_sorted(v) for v in value)
    return True


def test_plan_output_is_json_with_sorted_keys_and_deterministic() -> None:
    config = stack(pools=[CPU_POOL, gpu_pool("gpu-l4", ray_type="L4")],
                   apps={"embeddings": {"deployments": {"Embedder": gpu(0.5)}}, "search": {}})
    output = plan_capacity(config).to_output()
    assert _keys_sorted(output)
    assert json.loads(json.dumps(output)) == output
    assert plan_capacity(config).to_output() == output
    [gpu_group] = [g for g in output["worker_groups"] if g["name"] != "cpu"]
    assert gpu_group["tolerations"] == [GPU_TAINT]
    assert gpu_group["pod"]["accelerator_resource"] == "nvidia.com/gpu"


def test_plan_output_carries_every_field_of_the_plan() -> None:
    """The output is derived from the dataclasses: a new field cannot be left out of it."""
    output = plan_capacity(stack()).to_output()
    assert set(output) == {f.name for f in fields(CapacityPlan)}
    assert set(output["pools"][0]) == {f.name for f in fields(PoolPlan)} | {"upgrade_shortfall"}
    assert set(output["worker_groups"][0]["deployments"][0]) == {
        f.name for f in fields(DeploymentPlacement)}
    group_fields = {f.name for f in fields(WorkerGroupPlan)}
    assert set(output["worker_groups"][0]) == (
        group_fields - {"ray", "overhead", "accelerator_resource"}
        | {"pod", "ray_memory", "ray_num_cpus", "ray_num_gpus"})


def test_local_stack_plans() -> None:
    plan = plan_capacity(load_stack_config("local"))
    assert [g.name for g in plan.worker_groups] == ["cpu"]
    assert plan.pool(plan.head.pool).hosts_head


@pytest.mark.parametrize(("fixture", "path"), [
    ("broken-gpu-no-pool", "apps.embeddings.deployments.Embedder.resources"),
    ("broken-replica-too-large", "apps.classifier.deployments.TileClassifier.resources"),
    ("broken-pool-too-small", "pools[cpu].max_nodes"),
    ("broken-taint-no-toleration", "pools[gpu-l4].taints"),
    ("broken-no-head-pool", "pools"),
])
def test_broken_stack_files_are_valid_config_but_fail_the_plan(fixture: str, path: str) -> None:
    config = load_fixture(fixture)  # the stack file itself validates
    assert list(problems_of(config)) == [path]
