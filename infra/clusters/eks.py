"""EKS: a pulumi-eks cluster without its default node group, one managed node group per pool.

The cluster lives in a VPC servestack creates (a private and a public subnet per zone, NAT
for the private ones, as AWS's reference architectures do) or in one the stack names; nodes
always go in the private subnets. The Cluster Autoscaler grows each group up to its pool's
`max_nodes` (AWS credentials through EKS Pod Identity), and `pulumi up` leaves the groups'
desired size alone. GPU groups boot the EKS-optimized NVIDIA AMI (driver and container toolkit
included); the device plugin that advertises `nvidia.com/gpu` to the scheduler is not part of
that AMI, so it is installed from NVIDIA's chart unless the stack turns it off.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from infra.clusters.base import Cluster, ClusterBackend, kubernetes_provider
from infra.clusters.eks_spec import (
    CLUSTER_AUTOSCALER_IMAGE_TAGS,
    NODE_GROUP_LABEL,
    EksCluster,
    EksVpc,
)
from infra.config import NodePool, StackConfig
from infra.model_access import model_buckets, ray_service_account
from infra.names import CLOUD_TAINT_EFFECTS

CPU_AMI = "AL2023_x86_64_STANDARD"
GPU_AMI = "AL2023_x86_64_NVIDIA"
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)
DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
DEVICE_PLUGIN_VERSION = "0.20.0"
"""NVIDIA/k8s-device-plugin v0.20.0 (2026-08-19); its chart's `affinity` and `tolerations`
values, which `device_plugin_values` replaces, keep the shape they had in 0.17."""
AUTOSCALER_CHART = "cluster-autoscaler"
AUTOSCALER_REPO = "https://kubernetes.github.io/autoscaler"
AUTOSCALER_CHART_VERSION = "9.59.0"
AUTOSCALER_IMAGE_TAGS = CLUSTER_AUTOSCALER_IMAGE_TAGS  # the chart itself ships 1.35
AUTOSCALER_NAMESPACE = "kube-system"
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
AUTOSCALER_READ_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",  # labels and taints of an empty group: scale up from zero
)
AUTOSCALER_WRITE_ACTIONS = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
)
POD_IDENTITY_AGENT = "eks-pod-identity-agent"
PUBLIC_ELB_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"


def _eks(stack: StackConfig) -> EksCluster:
    assert isinstance(stack.cluster, EksCluster)
    return stack.cluster


def node_group_name(cluster: EksCluster, pool: NodePool) -> str:
    return f"{cluster.name}-{pool.name}"


def node_group_args(cluster: EksCluster, pool: NodePool) -> dict[str, Any]:
    return {
        "node_group_name": node_group_name(cluster, pool),
        "instance_types": [pool.machine_type],
        "ami_type": GPU_AMI if pool.accelerator else CPU_AMI,
        "capacity_type": "SPOT" if pool.spot else "ON_DEMAND",
        "disk_size": pool.disk_gb,
        "labels": dict(pool.labels),
        "taints": [{"key": t.key, "value": t.value, "effect": CLOUD_TAINT_EFFECTS[t.effect]}
                   for t in pool.taints],
        # desired_size only seeds a new group; the autoscaler owns it afterwards.
        "scaling_config": {"min_size": pool.min_nodes, "max_size": pool.max_nodes,
                           "desired_size": pool.min_nodes},
        # pulumi-eks' own switch: `ignore_changes` on the component never reaches its group.
        "ignore_scaling_changes": True,
    }


def device_plugin_values(cluster: EksCluster, gpu_pools: list[NodePool]) -> dict[str, Any]:
    """Run the plugin on the GPU node groups only, tolerating exactly their taints."""
    taints = {(t.key, t.effect) for pool in gpu_pools for t in pool.taints}
    tolerations = sorted(taints | {("CriticalAddonsOnly", "")})
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{
                "key": NODE_GROUP_LABEL, "operator": "In",
                "values": [node_group_name(cluster, pool) for pool in gpu_pools],
            }]}],
        }}},
        "tolerations": [
            {"key": key, "operator": "Exists", **({"effect": effect} if effect else {})}
            for key, effect in tolerations
        ],
    }


def _node_role(name: str, opts: pulumi.ResourceOptions) -> aws.iam.Role:
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": "ec2.amazonaws.com"},
    }]}
    role = aws.iam.Role(f"{name}-nodes", assume_role_policy=json.dumps(trust, sort_keys=True),
                        opts=opts)
    for arn in NODE_POLICIES:
        aws.iam.RolePolicyAttachment(
            f"{name}-nodes-{arn.rsplit('/', 1)[1]}", role=role.name, policy_arn=arn,
            opts=pulumi.ResourceOptions(parent=role),
        )
    return role


@dataclass(frozen=True)
class Network:
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    public_subnet_ids: list[pulumi.Input[str]]
    cidr: pulumi.Input[str]


def subnet_cidrs(vpc: EksVpc) -> list[tuple[str, str, str]]:
    """(zone, private CIDR, public CIDR): the VPC in eighths, privates first (they hold pods)."""
    blocks = list(ipaddress.ip_network(vpc.cidr).subnets(prefixlen_diff=3))
    zones = vpc.availability_zones
    return [(zone, str(blocks[i]), str(blocks[len(zones) + i])) for i, zone in enumerate(zones)]


def create_vpc(config: EksCluster, opts: pulumi.ResourceOptions) -> Network:
    """Private and public subnets per zone; private ones reach out through NAT only."""
    name = config.name
    vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=config.vpc.cidr, enable_dns_hostnames=True,
                      enable_dns_support=True, tags={"Name": name}, opts=opts)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=vpc))
    gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": name},
                                      opts=child)
    public_routes = aws.ec2.RouteTable(
        f"{name}-public", vpc_id=vpc.id, tags={"Name": f"{name}-public"},
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
        opts=child)
    private_ids: list[pulumi.Input[str]] = []
    public_ids: list[pulumi.Input[str]] = []
    nat: aws.ec2.NatGateway | None = None
    for zone, private_cidr, public_cidr in subnet_cidrs(config.vpc):
        public = aws.ec2.Subnet(
            f"{name}-public-{zone}", vpc_id=vpc.id, cidr_block=public_cidr,
            availability_zone=zone, map_public_ip_on_launch=False,
            tags={"Name": f"{name}-public-{zone}", PUBLIC_ELB_TAG: "1"}, opts=child)
        aws.ec2.RouteTableAssociation(f"{name}-public-{zone}", subnet_id=public.id,
                                      route_table_id=public_routes.id, opts=child)
        private = aws.ec2.Subnet(
            f"{name}-private-{zone}", vpc_id=vpc.id, cidr_block=private_cidr,
            availability_zone=zone,
            tags={"Name": f"{name}-private-{zone}", INTERNAL_ELB_TAG: "1"}, opts=child)
        if nat is None or config.vpc.nat_gateways == "one_per_zone":
            address = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc",
                                  tags={"Name": f"{name}-nat-{zone}"}, opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{zone}", allocation_id=address.id, subnet_id=public.id,
                tags={"Name": f"{name}-nat-{zone}"},
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                    depends_on=[gateway])))
        private_routes = aws.ec2.RouteTable(
            f"{name}-private-{zone}", vpc_id=vpc.id, tags={"Name": f"{name}-private-{zone}"},
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            opts=child)
        aws.ec2.RouteTableAssociation(f"{name}-private-{zone}", subnet_id=private.id,
                                      route_table_id=private_routes.id, opts=child)
        private_ids.append(private.id)
        public_ids.append(public.id)
    return Network(vpc_id=vpc.id, private_subnet_ids=private_ids, public_subnet_ids=public_ids,
                   cidr=config.vpc.cidr)


def existing_vpc(config: EksCluster, region: aws.Provider) -> Network:
    vpc_id = str(config.vpc.id)
    found = aws.ec2.get_vpc_output(id=vpc_id, opts=pulumi.InvokeOutputOptions(provider=region))
    return Network(vpc_id=vpc_id, private_subnet_ids=list(config.vpc.private_subnet_ids),
                   public_subnet_ids=list(config.vpc.public_subnet_ids), cidr=found.cidr_block)


def autoscaler_policy(cluster_name: str) -> dict[str, Any]:
    """Cluster Autoscaler's documented policy, writes limited to this cluster's groups (EKS
    tags every managed node group's ASG `k8s.io/cluster-autoscaler/<cluster>: owned`)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(AUTOSCALER_READ_ACTIONS), "Resource": "*"},
        {"Effect": "Allow", "Action": list(AUTOSCALER_WRITE_ACTIONS), "Resource": "*",
         "Condition": {"StringEquals": {
             f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}}},
    ]}


def autoscaler_values(config: EksCluster) -> dict[str, Any]:
    return {
        "autoDiscovery": {"clusterName": config.name},
        "awsRegion": config.region,
        "cloudProvider": "aws",
        "image": {"tag": AUTOSCALER_IMAGE_TAGS[config.kubernetes_version]},
        "rbac": {"serviceAccount": {"create": True, "name": AUTOSCALER_SERVICE_ACCOUNT}},
    }


POD_IDENTITY_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
    "Principal": {"Service": "pods.eks.amazonaws.com"},
}]}
"""Who may assume a Pod Identity role: the EKS Pod Identity agent, for an association."""


def pod_identity_agent(config: EksCluster, cluster: eks.Cluster,
                       opts: pulumi.ResourceOptions) -> aws.eks.Addon:
    return aws.eks.Addon(f"{config.name}-{POD_IDENTITY_AGENT}", cluster_name=config.name,
                         addon_name=POD_IDENTITY_AGENT, opts=pulumi.ResourceOptions.merge(
                             opts, pulumi.ResourceOptions(depends_on=[cluster])))


def model_read_policy(stack: StackConfig) -> dict[str, Any] | None:
    """s3:GetObject on exactly the objects/prefixes the apps' s3:// URIs name, and listing
    only below those prefixes (a sentence-transformers model is a prefix of objects)."""
    uris = model_buckets(stack, "s3")
    if not uris or stack.model_sources.s3_endpoint:  # S3-compatible: a credentials Secret
        return None
    statements: list[dict[str, Any]] = [{
        "Effect": "Allow", "Action": ["s3:GetObject"],
        "Resource": sorted(f"arn:aws:s3:::{uri.bucket}/{uri.key}*" for uri in uris),
    }]
    for bucket in sorted({uri.bucket for uri in uris}):
        prefixes = sorted(f"{uri.key}*" for uri in uris if uri.bucket == bucket)
        statements.append({
            "Effect": "Allow", "Action": ["s3:ListBucket"],
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": prefixes}},
        })
    return {"Version": "2012-10-17", "Statement": statements}


def model_reader(stack: StackConfig, agent: aws.eks.Addon, cluster: eks.Cluster,
                 opts: pulumi.ResourceOptions) -> None:
    """Pod Identity for the Ray pods: a role with model_read_policy, associated with their
    Kubernetes ServiceAccount only."""
    policy = model_read_policy(stack)
    if policy is None:
        return
    name = f"{_eks(stack).name}-model-reader"
    role = aws.iam.Role(name, assume_role_policy=json.dumps(POD_IDENTITY_TRUST, sort_keys=True),
                        opts=opts)
    aws.iam.RolePolicy(name, role=role.id, policy=json.dumps(policy, sort_keys=True),
                       opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                           parent=role)))
    aws.eks.PodIdentityAssociation(
        name, cluster_name=_eks(stack).name, namespace=stack.namespace,
        service_account=ray_service_account(stack), role_arn=role.arn,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            depends_on=[cluster, agent])))


def cluster_autoscaler(config: EksCluster, cluster: eks.Cluster, provider: k8s.Provider,
                       groups: list[eks.ManagedNodeGroup], agent: aws.eks.Addon,
                       opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    """The pinned Cluster Autoscaler, its AWS role bound to its ServiceAccount by Pod Identity."""
    name = config.name
    cluster_name = config.name  # eks.Cluster(name=...): the EKS name, once it exists
    role = aws.iam.Role(f"{name}-cluster-autoscaler",
                        assume_role_policy=json.dumps(POD_IDENTITY_TRUST, sort_keys=True),
                        opts=opts)
    aws.iam.RolePolicy(f"{name}-cluster-autoscaler", role=role.id,
                       policy=json.dumps(autoscaler_policy(name), sort_keys=True),
                       opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                           parent=role)))
    association = aws.eks.PodIdentityAssociation(
        f"{name}-cluster-autoscaler", cluster_name=cluster_name,
        namespace=AUTOSCALER_NAMESPACE, service_account=AUTOSCALER_SERVICE_ACCOUNT,
        role_arn=role.arn, opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            depends_on=[cluster, agent])))
    return _chart_release(
        AUTOSCALER_CHART, AUTOSCALER_CHART_VERSION, AUTOSCALER_REPO, AUTOSCALER_NAMESPACE,
        autoscaler_values(config),
        pulumi.ResourceOptions(parent=opts.parent, provider=provider,
                               depends_on=[association, *groups]),
    )


def _chart_release(chart: str, version: str, repo: str, namespace: str,
                   values: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    """A pinned chart installed as a release of its own name."""
    return k8s.helm.v3.Release(chart, name=chart, chart=chart, version=version,
                               repository_opts={"repo": repo}, namespace=namespace,
                               values=values, opts=opts)


def provision(stack: StackConfig, parent: pulumi.Resource) -> Cluster:
    config = _eks(stack)
    # The stack's region, not whatever `aws:region` the environment happens to carry.
    region = aws.Provider("aws", region=config.region, opts=pulumi.ResourceOptions(parent=parent))
    in_region = pulumi.ResourceOptions(parent=parent, providers=[region])
    network = create_vpc(config, in_region) if config.vpc.creates else existing_vpc(config,
                                                                                       region)
    role = _node_role(config.name, in_region)
    cluster = _control_plane(stack, network, role, in_region)
    groups = _node_groups(stack, cluster, network, role, parent, region)
    kubeconfig: pulumi.Output[str] = pulumi.Output.secret(cluster.kubeconfig_json)
    provider = kubernetes_provider("kubernetes", kubeconfig, parent, depends_on=[cluster])
    ready: list[pulumi.Resource] = [*groups, *_pod_identity_users(stack, cluster, provider,
                                                                  groups, in_region)]
    plugin = _device_plugin(stack, provider, groups, parent)
    if plugin is not None:
        ready.append(plugin)
    # The API server's ENIs sit in the cluster's subnets: the VPC's range, never the internet.
    return Cluster(provider=provider, kubeconfig=kubeconfig, pools=stack.pools, ready=tuple(ready),
                   api_server_cidrs=pulumi.Output.from_input(network.cidr).apply(lambda c: [c]))


def _control_plane(stack: StackConfig, network: Network, role: aws.iam.Role,
                   in_region: pulumi.ResourceOptions) -> eks.Cluster:
    """The EKS cluster, API authentication, OIDC, no default node group (the pools are)."""
    config = _eks(stack)
    return eks.Cluster(
        config.name,
        name=config.name,
        version=config.kubernetes_version,
        skip_default_node_group=True,
        authentication_mode=eks.AuthenticationMode.API,
        instance_roles=[role],
        create_oidc_provider=True,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        public_subnet_ids=network.public_subnet_ids or None,
        node_associate_public_ip_address=False,
        # The VPC CNI enforces NetworkPolicies only with its network policy agent turned on.
        vpc_cni_options=eks.VpcCniOptionsArgs(
            enable_network_policy=stack.security.network_policies),
        opts=in_region,
    )


def _node_groups(stack: StackConfig, cluster: eks.Cluster, network: Network,
                 role: aws.iam.Role, parent: pulumi.Resource,
                 region: aws.Provider) -> list[eks.ManagedNodeGroup]:
    """One managed node group per pool, in the private subnets."""
    config = _eks(stack)
    return [
        eks.ManagedNodeGroup(
            node_group_name(config, pool),
            cluster=cluster,
            node_role=role,
            subnet_ids=network.private_subnet_ids,
            **node_group_args(config, pool),
            opts=pulumi.ResourceOptions(parent=parent, providers=[region]),
        )
        for pool in stack.pools
    ]


def _pod_identity_users(stack: StackConfig, cluster: eks.Cluster, provider: k8s.Provider,
                        groups: list[eks.ManagedNodeGroup],
                        in_region: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """The pod identity agent, when the cluster autoscaler or the model reader needs AWS
    credentials, and those two; returns what the cluster must wait for (the autoscaler)."""
    config = _eks(stack)
    needs_agent = config.node_autoscaler == "cluster-autoscaler" or model_read_policy(stack)
    agent = pod_identity_agent(config, cluster, in_region) if needs_agent else None
    ready: list[pulumi.Resource] = []
    if config.node_autoscaler == "cluster-autoscaler":
        assert agent is not None
        ready.append(cluster_autoscaler(config, cluster, provider, groups, agent, in_region))
    if agent is not None:
        model_reader(stack, agent, cluster, in_region)
    return ready


def _device_plugin(stack: StackConfig, provider: k8s.Provider,
                   groups: list[eks.ManagedNodeGroup],
                   parent: pulumi.Resource) -> k8s.helm.v3.Release | None:
    """NVIDIA's device plugin on the GPU pools, unless the stack installs its own."""
    config = _eks(stack)
    gpu_pools = [pool for pool in stack.pools if pool.accelerator is not None]
    if not gpu_pools or not config.install_nvidia_device_plugin:
        return None
    return _chart_release(
        DEVICE_PLUGIN_CHART, DEVICE_PLUGIN_VERSION, DEVICE_PLUGIN_REPO, "kube-system",
        device_plugin_values(config, gpu_pools),
        pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=groups),
    )


class EksBackend(ClusterBackend):
    def provision(self, stack: StackConfig, parent: pulumi.Resource) -> Cluster:
        return provision(stack, parent)


BACKEND = EksBackend()
