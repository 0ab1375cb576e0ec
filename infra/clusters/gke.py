"""GKE: a cluster without its default pool, plus one autoscaled node pool per stack pool.

GPU pools get their accelerators and GKE-installed drivers from the pool's `accelerator`; the
pool's labels and taints go onto the nodes verbatim, because the capacity plan derives the
worker groups' nodeSelectors and tolerations from exactly those declarations.
"""

from __future__ import annotations

import json
import re

import pulumi
from pulumi_gcp import container

from infra.clusters.base import Cluster, kubernetes_provider
from infra.config import GkeCluster, NodePool, StackConfig
from infra.names import CLOUD_TAINT_EFFECTS

_ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")


def _gke(stack: StackConfig) -> GkeCluster:
    assert isinstance(stack.cluster, GkeCluster)
    return stack.cluster


def is_zonal(location: str) -> bool:
    return bool(_ZONE.match(location))


def node_config(pool: NodePool, gke: GkeCluster) -> container.NodePoolNodeConfigArgs:
    accelerators = None
    if pool.accelerator is not None:
        driver = container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
            gpu_driver_version=gke.gpu_driver_version)
        accelerators = [container.NodePoolNodeConfigGuestAcceleratorArgs(
            type=str(pool.accelerator.cloud_type), count=pool.accelerator.count,
            gpu_driver_installation_config=driver)]
    return container.NodePoolNodeConfigArgs(
        machine_type=pool.machine_type,
        disk_size_gb=pool.disk_gb,
        spot=pool.spot,
        labels=dict(pool.labels),
        taints=[container.NodePoolNodeConfigTaintArgs(
            key=t.key, value=t.value, effect=CLOUD_TAINT_EFFECTS[t.effect]) for t in pool.taints],
        guest_accelerators=accelerators,
        oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
        workload_metadata_config=container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
            mode="GKE_METADATA"),
        shielded_instance_config=container.NodePoolNodeConfigShieldedInstanceConfigArgs(
            enable_secure_boot=True, enable_integrity_monitoring=True),
    )


def kubeconfig_for(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that authenticates through gcloud's plugin: no long-lived credentials."""
    context = f"gke-{name}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {
            "server": f"https://{endpoint}", "certificate-authority-data": ca_certificate}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [{"name": context, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "installHint": "gcloud components install gke-gcloud-auth-plugin",
            "provideClusterInfo": True,
        }}}],
    }
    return json.dumps(document, sort_keys=True)


def provision(stack: StackConfig, parent: pulumi.Resource) -> Cluster:
    gke = _gke(stack)
    child = pulumi.ResourceOptions(parent=parent)
    cluster = container.Cluster(
        gke.name,
        name=gke.name,
        project=gke.project,
        location=gke.location,
        remove_default_node_pool=True,
        initial_node_count=1,
        release_channel={"channel": gke.release_channel},
        deletion_protection=gke.deletion_protection,
        workload_identity_config={"workload_pool": f"{gke.project}.svc.id.goog"},
        # Dataplane V2 enforces NetworkPolicies; without it GKE ignores them silently.
        datapath_provider="ADVANCED_DATAPATH" if stack.security.network_policies else None,
        opts=child,
    )
    node_pools = []
    for pool in stack.pools:
        # Regional clusters multiply per-zone counts by the zone count; total_* do not.
        autoscaling = container.NodePoolAutoscalingArgs(
            total_min_node_count=pool.min_nodes, total_max_node_count=pool.max_nodes,
            location_policy="ANY")
        node_pools.append(container.NodePool(
            f"{gke.name}-{pool.name}",
            name=pool.name,
            cluster=cluster.name,
            project=gke.project,
            location=gke.location,
            initial_node_count=pool.min_nodes if is_zonal(gke.location) else None,
            autoscaling=autoscaling,
            management=container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=node_config(pool, gke),
            opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["initialNodeCount"]),
        ))
    kubeconfig: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(
        cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate,
    ).apply(lambda parts: kubeconfig_for(str(parts[0]), str(parts[1]), str(parts[2]))))
    provider = kubernetes_provider("kubernetes", kubeconfig, parent, depends_on=node_pools)
    return Cluster(provider=provider, kubeconfig=kubeconfig, pools=stack.pools,
                   ready=tuple(node_pools))
