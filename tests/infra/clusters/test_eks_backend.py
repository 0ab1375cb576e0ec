"""EKS: managed node groups per pool, NVIDIA AMI for GPU groups, the device plugin chart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from infra.clusters.eks import DEVICE_PLUGIN_REPO, GPU_AMI, node_group_name
from infra.config import EksCluster
from infra.stack_file import load_stack_config, stack_file
from servestack.offline import ProgramRun, run_stack_file

Runs = Callable[[str], ProgramRun]
NODE_GROUP = "eks:index:ManagedNodeGroup"
EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE",
           "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


def staging() -> EksCluster:
    cluster = load_stack_config("staging").cluster
    assert isinstance(cluster, EksCluster)
    return cluster


def test_cluster_skips_the_default_node_group_and_maps_the_node_role(
    checked_stack_run: Runs,
) -> None:
    run = checked_stack_run("staging")
    cluster = run.one("eks:index:Cluster")
    assert cluster.remote
    assert cluster.inputs["skipDefaultNodeGroup"] is True
    assert cluster.inputs["version"] == staging().kubernetes_version
    role = run.one("aws:iam/role:Role")
    assert cluster.inputs["instanceRoles"] == [role.urn]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    policies = {r.inputs["policyArn"].rsplit("/", 1)[1]
                for r in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert policies == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                        "AmazonEC2ContainerRegistryReadOnly"}


def test_each_pool_is_a_managed_node_group_with_its_ami_taints_and_scaling(
    checked_stack_run: Runs,
) -> None:
    config = load_stack_config("staging")
    run = checked_stack_run("staging")
    groups = {r.inputs["nodeGroupName"]: r for r in run.of_type(NODE_GROUP)}
    for pool in config.pools:
        group = groups[node_group_name(staging(), pool)]
        inputs = group.inputs
        assert inputs["instanceTypes"] == [pool.machine_type]
        assert inputs["amiType"] == (GPU_AMI if pool.accelerator else "AL2023_x86_64_STANDARD")
        assert inputs["labels"] == dict(pool.labels)
        assert inputs["taints"] == [{"key": t.key, "value": t.value, "effect": EFFECTS[t.effect]}
                                    for t in pool.taints]
        assert inputs["scalingConfig"] == {"minSize": pool.min_nodes, "maxSize": pool.max_nodes,
                                           "desiredSize": pool.min_nodes}
        assert group.options.ignore_changes == ("scalingConfig.desiredSize",)


def test_device_plugin_runs_only_on_gpu_groups_and_tolerates_their_taints(
    checked_stack_run: Runs,
) -> None:
    run = checked_stack_run("staging")
    plugin = run.one("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin")
    assert plugin.inputs["repositoryOpts"] == {"repo": DEVICE_PLUGIN_REPO}
    assert plugin.inputs["namespace"] == "kube-system"
    values = plugin.inputs["values"]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (expression,) = terms["nodeSelectorTerms"][0]["matchExpressions"]
    assert expression["values"] == ["servestack-staging-gpu-a10g"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        values["tolerations"])
    groups = {r.urn for r in run.of_type(NODE_GROUP)}
    assert groups <= set(plugin.options.depends_on)
    namespace = run.one("kubernetes:core/v1:Namespace", "namespace")
    assert plugin.urn in namespace.options.depends_on


def test_device_plugin_can_be_left_to_the_platform(tmp_path: Path) -> None:
    document = yaml.safe_load(stack_file("staging").read_text())
    document["config"]["servestack:cluster"]["install_nvidia_device_plugin"] = False
    path = tmp_path / "Pulumi.staging-bottlerocket.yaml"
    path.write_text(yaml.safe_dump(document))
    run = run_stack_file(path).check()
    releases = [r.name for r in run.of_type("kubernetes:helm.sh/v3:Release")]
    assert "kuberay" in releases and "nvidia-device-plugin" not in releases


def test_every_aws_resource_uses_the_stacks_region(checked_stack_run: Runs) -> None:
    run = checked_stack_run("staging")
    provider = run.one("pulumi:providers:aws")
    assert provider.inputs["region"] == staging().region
    reference = f"{provider.urn}::{provider.name}-id"
    for resource in run.resources:
        if resource.type.startswith("aws:"):
            assert resource.provider == reference, resource.name
        elif resource.type.startswith("eks:"):
            assert resource.options.providers["aws"] == reference, resource.name
