"""EKS: a pulumi-eks cluster without its default node group, one managed node group per pool.

GPU groups boot the EKS-optimized NVIDIA AMI (driver and container toolkit included); the
device plugin that advertises `nvidia.com/gpu` to the scheduler is not part of that AMI, so it
is installed from NVIDIA's chart unless the stack turns it off.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from infra.clusters.base import Cluster, kubernetes_provider
from infra.config import EksCluster, NodePool, StackConfig
from infra.names import CLOUD_TAINT_EFFECTS, EKS_NODE_GROUP_LABEL

CPU_AMI = "AL2023_x86_64_STANDARD"
GPU_AMI = "AL2023_x86_64_NVIDIA"
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)
DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
DEVICE_PLUGIN_VERSION = "0.17.1"


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
        "scaling_config": {"min_size": pool.min_nodes, "max_size": pool.max_nodes,
                           "desired_size": pool.min_nodes},
    }


def device_plugin_values(cluster: EksCluster, gpu_pools: list[NodePool]) -> dict[str, Any]:
    """Run the plugin on the GPU node groups only, tolerating exactly their taints."""
    taints = {(t.key, t.effect) for pool in gpu_pools for t in pool.taints}
    tolerations = sorted(taints | {("CriticalAddonsOnly", "")})
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{
                "key": EKS_NODE_GROUP_LABEL, "operator": "In",
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


def provision(stack: StackConfig, parent: pulumi.Resource) -> Cluster:
    config = _eks(stack)
    # The stack's region, not whatever `aws:region` the environment happens to carry.
    region = aws.Provider("aws", region=config.region, opts=pulumi.ResourceOptions(parent=parent))
    in_region = pulumi.ResourceOptions(parent=parent, providers=[region])
    role = _node_role(config.name, in_region)
    cluster = eks.Cluster(
        config.name,
        name=config.name,
        version=config.kubernetes_version,
        skip_default_node_group=True,
        authentication_mode=eks.AuthenticationMode.API,
        instance_roles=[role],
        create_oidc_provider=True,
        # The VPC CNI enforces NetworkPolicies only with its network policy agent turned on.
        vpc_cni_options=eks.VpcCniOptionsArgs(
            enable_network_policy=stack.security.network_policies),
        opts=in_region,
    )
    groups = [
        eks.ManagedNodeGroup(
            node_group_name(config, pool),
            cluster=cluster,
            node_role=role,
            **node_group_args(config, pool),
            # The cluster autoscaler owns the desired size once the group exists.
            opts=pulumi.ResourceOptions(parent=parent, providers=[region],
                                        ignore_changes=["scalingConfig.desiredSize"]),
        )
        for pool in stack.pools
    ]
    kubeconfig: pulumi.Output[str] = pulumi.Output.secret(cluster.kubeconfig_json)
    provider = kubernetes_provider("kubernetes", kubeconfig, parent, depends_on=[cluster])
    ready: list[pulumi.Resource] = list(groups)
    gpu_pools = [pool for pool in stack.pools if pool.accelerator is not None]
    if gpu_pools and config.install_nvidia_device_plugin:
        ready.append(k8s.helm.v3.Release(
            DEVICE_PLUGIN_CHART,
            name=DEVICE_PLUGIN_CHART,
            chart=DEVICE_PLUGIN_CHART,
            version=DEVICE_PLUGIN_VERSION,
            repository_opts={"repo": DEVICE_PLUGIN_REPO},
            namespace="kube-system",
            values=device_plugin_values(config, gpu_pools),
            opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=groups),
        ))
    return Cluster(provider=provider, kubeconfig=kubeconfig, pools=stack.pools, ready=tuple(ready))
