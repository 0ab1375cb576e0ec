"""GKE: no default pool, one autoscaled node pool per stack pool, GPU pools with drivers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockResourceArgs

from infra.clusters.gke_spec import GkeCluster
from infra.stack_file import load_stack_config, stack_file
from servestack.offline import OfflineMocks, ProgramRun, run_stack_file

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


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nodes_run_as_a_dedicated_least_privilege_service_account(
    stack: str, checked_stack_run: Runs,
) -> None:
    run = checked_stack_run(stack)
    gke = load_stack_config(stack).cluster
    assert isinstance(gke, GkeCluster)
    account = run.one("gcp:serviceaccount/account:Account")
    assert account.inputs["accountId"] == f"{gke.name}-nodes"
    email = f"{account.name}-id"  # the mock's email stand-in is unknown: compare by reference
    roles = {r.inputs["role"] for r in run.of_type("gcp:projects/iAMMember:IAMMember")}
    assert roles == {"roles/container.defaultNodeServiceAccount",
                     "roles/artifactregistry.reader"}
    for pool in run.of_type(NODE_POOL):
        assert "serviceAccount" in pool.inputs["nodeConfig"], email
    assert "serviceAccount" in run.one(CLUSTER).inputs["nodeConfig"]


def test_dataplane_v2_is_a_create_time_choice(checked_stack_run: Runs) -> None:
    cluster = checked_stack_run("prod").one(CLUSTER)
    assert cluster.inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    assert "datapathProvider" in cluster.options.ignore_changes


@pytest.fixture
def legacy_datapath_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cloud holds a cluster that exists already, created without Dataplane V2."""
    real = OfflineMocks.new_resource

    def new_resource(self: OfflineMocks, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        id_, state = real(self, args)
        if args.typ == CLUSTER:
            state["datapathProvider"] = "LEGACY_DATAPATH"
        return id_, state

    monkeypatch.setattr(OfflineMocks, "new_resource", new_resource)


@pytest.mark.usefixtures("legacy_datapath_cloud")
def test_turning_network_policies_on_for_an_existing_cluster_is_refused() -> None:
    run = run_stack_file(stack_file("dev"))
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    assert "servestack:security.network_policies is true" in message
    assert "created without Dataplane V2" in message and "new cluster" in message
    # Nothing inside the cluster was touched: the provider never got its kubeconfig.
    assert not [r for r in run.resources if r.type.startswith("kubernetes:")
                and not r.type.startswith("pulumi:providers")]


def test_the_head_may_reach_only_the_control_plane_endpoint(checked_stack_run: Runs) -> None:
    policy = checked_stack_run("dev").one("kubernetes:networking.k8s.io/v1:NetworkPolicy",
                                  "network-policies-ray-head-egress-api-server")
    (rule,) = policy.inputs["spec"]["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": "203.0.113.10/32"}}]
