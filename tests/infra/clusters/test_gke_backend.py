"""GKE: no default pool, one autoscaled node pool per stack pool, GPU pools with drivers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from infra.config import GkeCluster
from infra.stack_file import load_stack_config
from servestack.offline import ProgramRun

Runs = Callable[[str], ProgramRun]
CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE",
           "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cluster_drops_the_default_pool_and_follows_the_stack(
    stack: str, checked_stack_run: Runs,
) -> None:
    gke = load_stack_config(stack).cluster
    assert isinstance(gke, GkeCluster)
    cluster = checked_stack_run(stack).one(CLUSTER).inputs
    assert cluster["removeDefaultNodePool"] is True
    assert (cluster["project"], cluster["location"]) == (gke.project, gke.location)
    assert cluster["deletionProtection"] is gke.deletion_protection
    assert cluster["releaseChannel"] == {"channel": gke.release_channel}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_pool_is_a_node_pool_with_its_machine_labels_taints_and_limits(
    stack: str, checked_stack_run: Runs,
) -> None:
    config = load_stack_config(stack)
    pools = {r.inputs["name"]: r.inputs for r in checked_stack_run(stack).of_type(NODE_POOL)}
    assert set(pools) == {pool.name for pool in config.pools}
    for pool in config.pools:
        registered = pools[pool.name]
        node = registered["nodeConfig"]
        assert node["machineType"] == pool.machine_type
        assert node["labels"] == dict(pool.labels)
        assert node["spot"] is pool.spot
        assert node["taints"] == [{"key": t.key, "value": t.value, "effect": EFFECTS[t.effect]}
                                  for t in pool.taints]
        assert registered["autoscaling"]["totalMinNodeCount"] == pool.min_nodes
        assert registered["autoscaling"]["totalMaxNodeCount"] == pool.max_nodes
        if pool.accelerator is None:
            assert "guestAccelerators" not in node
        else:
            (accelerator,) = node["guestAccelerators"]
            assert accelerator["type"] == pool.accelerator.cloud_type
            assert accelerator["count"] == pool.accelerator.count
            assert accelerator["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "DEFAULT"}


def test_gpu_pools_can_scale_to_zero_and_use_spot_in_dev(checked_stack_run: Runs) -> None:
    pools = {r.inputs["name"]: r.inputs for r in checked_stack_run("dev").of_type(NODE_POOL)}
    assert pools["gpu-l4"]["autoscaling"]["totalMinNodeCount"] == 0
    assert pools["gpu-l4"]["nodeConfig"]["spot"] is True


def test_zonal_pools_set_an_initial_count_regional_pools_leave_it_to_the_autoscaler(
    checked_stack_run: Runs,
) -> None:
    dev = {r.inputs["name"]: r for r in checked_stack_run("dev").of_type(NODE_POOL)}
    prod = {r.inputs["name"]: r for r in checked_stack_run("prod").of_type(NODE_POOL)}
    assert dev["cpu"].inputs["initialNodeCount"] == 1
    assert all("initialNodeCount" not in r.inputs for r in prod.values())
    assert dev["cpu"].options.ignore_changes == ("initialNodeCount",)


def test_kubeconfig_uses_the_gcloud_auth_plugin_and_the_cluster_endpoint(
    checked_stack_run: Runs,
) -> None:
    run = checked_stack_run("dev")
    kubeconfig = json.loads(run.one("pulumi:providers:kubernetes").inputs["kubeconfig"])
    (cluster,) = kubeconfig["clusters"]
    assert cluster["cluster"]["server"].startswith("https://")
    assert cluster["cluster"]["certificate-authority-data"]
    (user,) = kubeconfig["users"]
    assert user["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert "kubeconfig" in run.secret_outputs


def test_the_gke_model_refuses_mig_resources_and_gpu_pools_without_an_accelerator_type() -> None:
    stack = load_stack_config("dev")
    gke = stack.cluster
    assert isinstance(gke, GkeCluster)
    gpu = stack.pool("gpu-l4")
    assert gpu.accelerator is not None
    broken = gpu.model_copy(update={"accelerator": gpu.accelerator.model_copy(update={
        "resource": "nvidia.com/mig-1g.10gb", "cloud_type": None})})
    problems = dict(gke.pool_problems((stack.pool("cpu"), broken)))
    assert "GKE MIG partitions" in problems["pools[gpu-l4].accelerator.resource"]
    assert "nvidia-l4" in problems["pools[gpu-l4].accelerator.cloud_type"]
    assert gke.pool_problems(stack.pools) == []
