"""EKS: managed node groups per pool, NVIDIA AMI for GPU groups, the device plugin chart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest
import yaml

from infra.clusters.eks import (
    AUTOSCALER_CHART_VERSION,
    AUTOSCALER_IMAGE_TAGS,
    DEVICE_PLUGIN_REPO,
    DEVICE_PLUGIN_VERSION,
    GPU_AMI,
    node_group_name,
)
from infra.clusters.eks_spec import EksCluster
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
    role = run.one("aws:iam/role:Role", f"{staging().name}-nodes")
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
        # pulumi-eks' own switch; `ignore_changes` on the component never reached the group.
        assert inputs["ignoreScalingChanges"] is True
        assert group.options.ignore_changes == ()


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


SUBNET = "aws:ec2/subnet:Subnet"


def _variant(tmp_path: Path, cluster: dict[str, object]) -> Path:
    document = yaml.safe_load(stack_file("staging").read_text())
    document["config"]["servestack:cluster"].update(cluster)
    path = tmp_path / "Pulumi.staging-variant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_cluster_gets_its_own_vpc_and_nodes_only_private_subnets(
    checked_stack_run: Runs,
) -> None:
    run = checked_stack_run("staging")
    vpc = run.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == staging().vpc.cidr
    subnets = {r.name: r for r in run.of_type(SUBNET)}
    zones = staging().vpc.availability_zones
    private = [subnets[f"{staging().name}-private-{zone}"] for zone in zones]
    public = [subnets[f"{staging().name}-public-{zone}"] for zone in zones]
    assert [s.inputs["availabilityZone"] for s in private] == list(zones)
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in public)
    private_ids = [f"{s.name}-id" for s in private]
    cluster = run.one("eks:index:Cluster").inputs
    assert cluster["vpcId"] == f"{vpc.name}-id"
    assert cluster["privateSubnetIds"] == private_ids
    assert cluster["nodeAssociatePublicIpAddress"] is False
    for group in run.of_type(NODE_GROUP):
        assert group.inputs["subnetIds"] == private_ids
    # One NAT per zone; every private subnet routes 0.0.0.0/0 through its zone's NAT.
    nats = run.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == len(zones)
    routes = {r.name: r for r in run.of_type("aws:ec2/routeTable:RouteTable")}
    for zone in zones:
        (route,) = routes[f"{staging().name}-private-{zone}"].inputs["routes"]
        assert route["natGatewayId"] == f"{staging().name}-nat-{zone}-id"
        assert "gatewayId" not in route


def test_an_existing_vpc_is_used_as_given(tmp_path: Path) -> None:
    vpc = {"id": "vpc-0abc", "private_subnet_ids": ["subnet-a", "subnet-b"]}
    run = run_stack_file(_variant(tmp_path, {"vpc": vpc})).check()
    assert run.of_type("aws:ec2/vpc:Vpc") == [] and run.of_type(SUBNET) == []
    cluster = run.one("eks:index:Cluster").inputs
    assert (cluster["vpcId"], cluster["privateSubnetIds"]) == ("vpc-0abc", ["subnet-a", "subnet-b"])
    for group in run.of_type(NODE_GROUP):
        assert group.inputs["subnetIds"] == ["subnet-a", "subnet-b"]


@pytest.mark.parametrize(("vpc", "words"), [
    ({"availability_zones": ["us-west-2a"]}, "at least two availability_zones"),
    ({"id": "vpc-0abc", "private_subnet_ids": ["subnet-a"]}, "at least two private_subnet_ids"),
    ({"availability_zones": ["us-west-2a", "us-west-2b"], "id": "vpc-0abc",
      "private_subnet_ids": ["a", "b"]}, "not both"),
    ({"availability_zones": ["us-east-1a", "us-east-1b"]}, "not in region us-west-2"),
])
def test_a_vpc_that_cannot_work_is_refused_with_its_field(
    tmp_path: Path, vpc: dict[str, object], words: str,
) -> None:
    run = run_stack_file(_variant(tmp_path, {"vpc": vpc}))
    assert isinstance(run.error, pulumi.RunError)
    assert "servestack:cluster" in str(run.error) and words in str(run.error)
    assert run.resources == ()


def test_the_cluster_autoscaler_grows_groups_to_max_nodes_with_pod_identity(
    checked_stack_run: Runs,
) -> None:
    run = checked_stack_run("staging")
    release = run.one("kubernetes:helm.sh/v3:Release", "cluster-autoscaler")
    assert release.inputs["version"] == AUTOSCALER_CHART_VERSION
    values = release.inputs["values"]
    assert values["autoDiscovery"]["clusterName"] == staging().name
    assert values["awsRegion"] == staging().region
    assert values["image"]["tag"] == AUTOSCALER_IMAGE_TAGS[staging().kubernetes_version]
    account = values["rbac"]["serviceAccount"]["name"]
    association = run.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        release.inputs["namespace"], account)
    role = run.by_urn(next(r.urn for r in run.of_type("aws:iam/role:Role")
                           if r.name.endswith("cluster-autoscaler")))
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    (reads, writes) = policy["Statement"]
    assert "eks:DescribeNodegroup" in reads["Action"]  # labels/taints of empty groups
    assert writes["Condition"]["StringEquals"] == {
        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{staging().name}": "owned"}
    assert run.one("aws:eks/addon:Addon").inputs["addonName"] == "eks-pod-identity-agent"
    namespace = run.one("kubernetes:core/v1:Namespace", "namespace")
    assert release.urn in namespace.options.depends_on


def test_the_device_plugin_is_the_current_release() -> None:
    assert DEVICE_PLUGIN_VERSION == "0.20.0"
