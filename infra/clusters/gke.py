"""GKE: a cluster without its default pool, plus one autoscaled node pool per stack pool.

GPU pools get their accelerators and GKE-installed drivers from the pool's `accelerator`; the
pool's labels and taints go onto the nodes verbatim, because the capacity plan derives the
worker groups' nodeSelectors and tolerations from exactly those declarations.
"""

from __future__ import annotations

import json
import re

import pulumi
from pulumi_gcp import container, projects, serviceaccount, storage

from infra.clusters.base import Cluster, ClusterBackend, kubernetes_provider
from infra.clusters.gke_spec import GkeCluster
from infra.config import PROJECT, NodePool, StackConfig
from infra.model_access import model_buckets, ray_service_account
from infra.names import CLOUD_TAINT_EFFECTS

_ARTIFACT_REGISTRY = re.compile(r"^[a-z0-9-]+-docker\.pkg\.dev/([a-z][-a-z0-9]{4,28}[a-z0-9])/")
DATAPLANE_V2 = "ADVANCED_DATAPATH"
NODE_ROLES = ("roles/container.defaultNodeServiceAccount",)
"""Google's least-privilege role for GKE nodes (logs, metrics, metadata), in place of the
Compute Engine default service account and its project-wide Editor role."""
IMAGE_PULL_ROLE = "roles/artifactregistry.reader"
MODEL_READ_ROLE = "roles/storage.objectViewer"
WORKLOAD_IDENTITY_ROLE = "roles/iam.workloadIdentityUser"
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"


def _gke(stack: StackConfig) -> GkeCluster:
    assert isinstance(stack.cluster, GkeCluster)
    return stack.cluster


def image_project(stack: StackConfig) -> str:
    """The project whose Artifact Registry holds the app image (the cluster's otherwise)."""
    found = _ARTIFACT_REGISTRY.match(stack.image.repository)
    return found.group(1) if found else _gke(stack).project


def _service_account(name: str, account_id: str, project: str, display_name: str,
                     parent: pulumi.Resource
                     ) -> tuple[serviceaccount.Account, pulumi.Output[str]]:
    """A Google service account and the IAM member string its grants name."""
    account = serviceaccount.Account(
        name, account_id=account_id, project=project, display_name=display_name,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return account, account.email.apply(lambda email: f"serviceAccount:{email}")


def node_service_account(stack: StackConfig, parent: pulumi.Resource
                         ) -> serviceaccount.Account:
    """A service account for this cluster's nodes (GPU pools included) with only the roles
    nodes need and image pulls, as Google's hardening guide and GKE examples do."""
    gke = _gke(stack)
    account, member = _service_account(
        f"{gke.name}-nodes", gke.node_service_account_id, gke.project,
        f"GKE nodes of {gke.name} (servestack)", parent)
    grants = [(gke.project, role) for role in NODE_ROLES] + [(image_project(stack),
                                                              IMAGE_PULL_ROLE)]
    for project, role in grants:
        projects.IAMMember(
            f"{gke.name}-nodes-{role.rsplit('/', 1)[1]}", project=project, role=role,
            member=member, opts=pulumi.ResourceOptions(parent=account),
        )
    return account


def model_reader(stack: StackConfig, parent: pulumi.Resource) -> dict[str, pulumi.Input[str]]:
    """Workload Identity for the Ray pods: a Google service account with read-only access
    (storage.objectViewer) to exactly the buckets the apps' gs:// URIs name, which only the
    Ray pods' Kubernetes ServiceAccount may impersonate. Returns that KSA's annotation."""
    buckets = sorted({uri.bucket for uri in model_buckets(stack, "gs")})
    if not buckets:
        return {}
    gke = _gke(stack)
    account, member = _service_account(
        f"{gke.name}-model-reader", gke.model_reader_account_id, gke.project,
        f"Ray pods of {stack.rayservice.name} reading models (servestack)", parent)
    for bucket in buckets:
        storage.BucketIAMMember(
            f"{gke.name}-model-reader-{bucket}", bucket=bucket, role=MODEL_READ_ROLE,
            member=member, opts=pulumi.ResourceOptions(parent=account),
        )
    ksa = f"{gke.project}.svc.id.goog[{stack.namespace}/{ray_service_account(stack)}]"
    serviceaccount.IAMMember(
        f"{gke.name}-model-reader-workload-identity", service_account_id=account.name,
        role=WORKLOAD_IDENTITY_ROLE, member=f"serviceAccount:{ksa}",
        opts=pulumi.ResourceOptions(parent=account),
    )
    return {WORKLOAD_IDENTITY_ANNOTATION: account.email}


def datapath_for(stack: StackConfig) -> str | None:
    """Dataplane V2 enforces NetworkPolicies; without it GKE ignores them silently."""
    return DATAPLANE_V2 if stack.security.network_policies else None


def check_datapath(stack: StackConfig, actual: str | None) -> None:
    """Refuse to run on if the cluster's datapath is not the one the stack asks for.

    GKE picks the datapath at creation only: changing it replaces the cluster, which
    `deletion_protection` then refuses halfway. The program therefore ignores changes to the
    input and compares the stack with what the cluster reports instead.
    """
    wanted = datapath_for(stack) == DATAPLANE_V2
    has = actual == DATAPLANE_V2
    if wanted == has:
        return
    gke = _gke(stack)
    raise pulumi.RunError(
        f"{PROJECT}:security.network_policies is {str(wanted).lower()}, but GKE cluster "
        f"{gke.name!r} was created {'without' if wanted else 'with'} Dataplane V2 "
        f"(datapath_provider={actual or 'LEGACY_DATAPATH'}), which GKE can only choose when a "
        f"cluster is created. Set security.network_policies back to {str(has).lower()}, or "
        "create a new cluster (a new cluster.name) and move the workload to it."
    )


def api_server_cidrs(cluster: container.Cluster) -> pulumi.Output[list[str]]:
    """The control plane's addresses: its endpoint, and its private endpoint when it has one."""
    def cidrs(parts: list[object]) -> list[str]:
        endpoint, private = parts
        private_endpoint = getattr(private, "private_endpoint", None) if private else None
        return sorted({f"{ip}/32" for ip in (endpoint, private_endpoint) if ip})
    return pulumi.Output.all(cluster.endpoint, cluster.private_cluster_config).apply(cidrs)


def node_config(pool: NodePool, gke: GkeCluster,
                service_account: pulumi.Input[str] | None = None,
                ) -> container.NodePoolNodeConfigArgs:
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
        service_account=service_account,
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


GATEWAY_API_CHANNEL = "CHANNEL_STANDARD"


def provision(stack: StackConfig, parent: pulumi.Resource) -> Cluster:
    gke = _gke(stack)
    nodes = node_service_account(stack, parent)
    cluster = container.Cluster(
        gke.name,
        name=gke.name,
        project=gke.project,
        location=gke.location,
        remove_default_node_pool=True,
        initial_node_count=1,
        # Even the default pool that lives only during creation runs as the nodes' account.
        node_config=container.ClusterNodeConfigArgs(service_account=nodes.email),
        release_channel={"channel": gke.release_channel},
        deletion_protection=gke.deletion_protection,
        workload_identity_config={"workload_pool": f"{gke.project}.svc.id.goog"},
        datapath_provider=datapath_for(stack),
        # GKE installs the Gateway API CRDs and its gateway controller on this channel.
        gateway_api_config=({"channel": GATEWAY_API_CHANNEL} if stack.gateway.enabled
                            else None),
        # Create-time only: a later change is refused by `check_datapath` below rather than
        # planned as a replacement of the cluster.
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["datapathProvider"]),
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
            initial_node_count=pool.min_nodes if gke.is_zonal else None,
            autoscaling=autoscaling,
            management=container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=node_config(pool, gke, nodes.email),
            opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["initialNodeCount"]),
        ))

    def kubeconfig_checked(parts: list[str]) -> str:
        name, endpoint, ca_certificate, datapath = parts
        check_datapath(stack, datapath)
        return kubeconfig_for(name, endpoint, ca_certificate)

    # Nothing in the cluster is touched before the datapath check: the provider needs this.
    kubeconfig: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(
        cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate,
        cluster.datapath_provider,
    ).apply(kubeconfig_checked))
    provider = kubernetes_provider("kubernetes", kubeconfig, parent, depends_on=node_pools)
    return Cluster(provider=provider, kubeconfig=kubeconfig, pools=stack.pools,
                   ready=tuple(node_pools), api_server_cidrs=api_server_cidrs(cluster),
                   model_reader_annotations=model_reader(stack, parent))


class GkeBackend(ClusterBackend):
    def provision(self, stack: StackConfig, parent: pulumi.Resource) -> Cluster:
        return provision(stack, parent)


BACKEND = GkeBackend()
