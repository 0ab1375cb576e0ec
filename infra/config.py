"""`StackConfig`: one stack file, parsed and validated once, before anything is built.

The same object feeds `servestack serve` (local Ray), the Pulumi program and every
offline command, so a stack that validates here means the same thing everywhere.
Pulumi keys live under the `servestack:` namespace in `stacks/Pulumi.<stack>.yaml`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    ByteSize,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from apps.catalog import CATALOG
from apps.ingress_settings import IngressSettings
from apps.model_source.uri import is_remote
from apps.spec import (
    ApplicationSpec,
    ProxyLocation,
    SpecError,
    SpecModel,
    check_unique_applications,
)
from infra.names import KUBECONFIG_KEY, NO_SCHEDULE, SERVE_CLIENT_LABEL, TaintEffect

PROJECT = "servestack"
RAY_VERSION = "2.60.0"
"""The Ray version servestack is pinned to (pyproject); rayVersion and image tags derive from it."""
KUBERAY_VERSION: Final = "1.7.0"

REPO_ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO_ROOT / "stacks"

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)



def _sorted_labels(value: dict[str, str]) -> dict[str, str]:
    """Kubernetes label maps: valid keys, sorted so rendered manifests diff cleanly."""
    for key in value:
        if not _LABEL_KEY.match(key):
            raise ValueError(f"{key!r} is not a valid label key")
    return dict(sorted(value.items()))


LabelMap = Annotated[dict[str, str], AfterValidator(_sorted_labels)]
BACKEND_RULES: Final = "backend_rules"
"""Validation context key: False skips the backend's pool rules (see parse_stack_config)."""

class StackConfigError(ValueError):
    """The stack file is invalid; the message names each field path and how to fix it."""

    def __init__(self, stack: str, problems: list[tuple[str, str]]) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  {PROJECT}:{path}: {message}" for path, message in problems)
        super().__init__(f"stack {stack!r} has an invalid configuration:\n{lines}")


# --- clusters ---------------------------------------------------------------------------


# Fields every backend shares, described once.
_BACKEND = "Who runs the cluster: kind (local), gke, eks or existing (someone else's)."
_CLUSTER_NAME = "Name of the cluster this stack creates."


class _Cluster(SpecModel):
    def pool_problems(self, pools: Sequence[NodePool]) -> list[tuple[str, str]]:
        """What this backend needs of every pool beyond the generic pool fields."""
        return []


class KindCluster(_Cluster):
    """A local kind cluster; its worker nodes impersonate the declared pools."""

    backend: Literal["kind"] = Field(description=_BACKEND)
    name: str = Field("servestack", pattern=_DNS_LABEL, description=_CLUSTER_NAME)
    node_image: str = Field(
        "kindest/node:v1.33.1", description="kindest/node image of every kind node."
    )


MAX_SERVICE_ACCOUNT_ID: Final = 30
CLUSTER_AUTOSCALER_IMAGE_TAGS: Final = {"1.33": "v1.33.6", "1.34": "v1.34.5", "1.35": "v1.35.2"}
"""Cluster Autoscaler release per Kubernetes minor (its README: the minors must match)."""


class GkeCluster(_Cluster):
    backend: Literal["gke"] = Field(description=_BACKEND)
    project: str = Field(description="GCP project.")
    location: str = Field(description="Region or zone, e.g. europe-west4.")
    name: str = Field("servestack", pattern=_DNS_LABEL, description=_CLUSTER_NAME)
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = Field(
        "REGULAR", description="GKE release channel."
    )
    gpu_driver_version: Literal["DEFAULT", "LATEST"] = Field(
        "DEFAULT", description="NVIDIA driver GKE installs on GPU nodes."
    )
    deletion_protection: bool = Field(
        True, description="GKE refuses to delete the cluster (pulumi destroy fails) while true."
    )

    @property
    def node_service_account_id(self) -> str:
        """The dedicated service account every node pool of this cluster runs as."""
        return f"{self.name}-nodes"

    @property
    def model_reader_account_id(self) -> str:
        """The service account the Ray pods read gs:// models as (as long as the nodes')."""
        return f"{self.name}-model"

    @model_validator(mode="after")
    def _node_account_fits(self) -> Self:
        if len(self.node_service_account_id) > MAX_SERVICE_ACCOUNT_ID:
            raise SpecError([("name", f"the node service account {self.node_service_account_id!r}"
                                      f" would exceed GCP's {MAX_SERVICE_ACCOUNT_ID} characters; "
                                      "shorten the cluster name")])
        return self

    def pool_problems(self, pools: Sequence[NodePool]) -> list[tuple[str, str]]:
        problems = []
        for pool in pools:
            if not pool.machine_type:
                problems.append((pool.path("machine_type"),
                                 "GKE needs a machine type for every pool, e.g. n2-standard-8"))
            accelerator = pool.accelerator
            if accelerator is None:
                continue
            if not accelerator.cloud_type:
                problems.append((pool.path("accelerator.cloud_type"),
                                 "GKE needs the accelerator type of a GPU pool, e.g. nvidia-l4"))
            if accelerator.resource != "nvidia.com/gpu":
                problems.append((
                    pool.path("accelerator.resource"),
                    f"GKE GPU nodes expose nvidia.com/gpu, not {accelerator.resource!r}; GKE MIG "
                    "partitions are not supported by this backend (use the existing backend)",
                ))
        return problems


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/8") from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
MAX_VPC_ZONES: Final = 4


class EksVpc(SpecModel):
    """Where the EKS cluster and its nodes live; nodes always go in private subnets.

    Either servestack creates the VPC (`availability_zones`, optionally `cidr` and
    `nat_gateways`), or the stack names an existing one (`id` and `private_subnet_ids`).
    """

    cidr: Cidr = Field(
        "10.0.0.0/16", description="Address range of a VPC servestack creates; split into a "
        "private and a public subnet per zone.",
    )
    availability_zones: tuple[str, ...] = Field(
        (), max_length=MAX_VPC_ZONES,
        description="Zones of a VPC servestack creates, e.g. [us-west-2a, us-west-2b]; EKS "
        "needs at least two.",
    )
    nat_gateways: Literal["one_per_zone", "single"] = Field(
        "one_per_zone", description="NAT for the private subnets of a created VPC: one per zone "
        "(a zone outage keeps the others online) or a single, cheaper one.",
    )
    id: str | None = Field(
        None, pattern=r"^vpc-[0-9a-f]+$", description="An existing VPC to use instead.",
    )
    private_subnet_ids: tuple[str, ...] = Field(
        (), description="Private subnets of the existing VPC, in two or more zones, with a "
        "route to the internet through NAT (image pulls): the nodes go here.",
    )
    public_subnet_ids: tuple[str, ...] = Field(
        (), description="Public subnets of the existing VPC, for internet-facing load "
        "balancers; may stay empty.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        existing = self.id is not None or bool(self.private_subnet_ids or self.public_subnet_ids)
        if existing and self.availability_zones:
            raise ValueError(
                "give either availability_zones (servestack creates the VPC) or id and "
                "private_subnet_ids (an existing VPC), not both"
            )
        if existing and (self.id is None or len(self.private_subnet_ids) < 2):
            raise ValueError(
                "an existing VPC needs its id and at least two private_subnet_ids "
                "(EKS spans two or more zones)"
            )
        if not existing and len(self.availability_zones) < 2:
            raise ValueError(
                "name at least two availability_zones for the VPC servestack creates "
                "(e.g. [us-west-2a, us-west-2b]), or an existing VPC's id and private_subnet_ids"
            )
        return self

    @property
    def creates(self) -> bool:
        return self.id is None


class EksCluster(_Cluster):
    backend: Literal["eks"] = Field(description=_BACKEND)
    region: str = Field(description="AWS region.")
    name: str = Field("servestack", pattern=_DNS_LABEL, description=_CLUSTER_NAME)
    kubernetes_version: str = Field(
        "1.33", pattern=r"^1\.\d+$", description="EKS Kubernetes version."
    )
    install_nvidia_device_plugin: bool = Field(
        True, description="Install NVIDIA's device plugin chart on the GPU node groups "
        "(off for AMIs that ship it, e.g. Bottlerocket).",
    )
    vpc: EksVpc = Field(
        description="The VPC: created by servestack (private subnets per zone behind NAT) "
        "or an existing one; see the README's EKS section.",
    )
    node_autoscaler: Literal["cluster-autoscaler", "none"] = Field(
        "cluster-autoscaler",
        description="What grows the node groups up to each pool's max_nodes: the pinned "
        "Cluster Autoscaler (IAM through EKS Pod Identity), or none when the platform "
        "already runs one.",
    )

    @model_validator(mode="after")
    def _fits_region_and_autoscaler(self) -> Self:
        problems = []
        stray = [zone for zone in self.vpc.availability_zones
                 if not zone.startswith(self.region)]
        if stray:
            problems.append(("vpc.availability_zones",
                             f"{stray} are not in region {self.region}"))
        if (self.node_autoscaler == "cluster-autoscaler"
                and self.kubernetes_version not in CLUSTER_AUTOSCALER_IMAGE_TAGS):
            problems.append(("kubernetes_version",
                             f"no pinned Cluster Autoscaler for Kubernetes "
                             f"{self.kubernetes_version}; servestack pins "
                             f"{sorted(CLUSTER_AUTOSCALER_IMAGE_TAGS)}"))
        if problems:
            raise SpecError(problems)
        return self

    def pool_problems(self, pools: Sequence[NodePool]) -> list[tuple[str, str]]:
        problems = []
        for pool in pools:
            if not pool.machine_type:
                problems.append((pool.path("machine_type"),
                                 "EKS needs an instance type for every pool, e.g. m6i.2xlarge"))
            if pool.accelerator is not None and pool.accelerator.resource != "nvidia.com/gpu":
                problems.append((
                    pool.path("accelerator.resource"),
                    f"the NVIDIA AMI and device plugin expose nvidia.com/gpu, not "
                    f"{pool.accelerator.resource!r}; MIG on EKS needs the GPU operator (use the "
                    "existing backend for such a cluster)",
                ))
        return problems


class StackReferenceKubeconfig(SpecModel):
    stack: str = Field(description="Fully qualified stack name, e.g. acme/platform/prod.")
    output: str = Field("kubeconfig", description="Name of that stack's kubeconfig output.")


class ExistingCluster(_Cluster):
    """A cluster someone else runs; its kubeconfig comes from a secret config key or from
    another stack's output."""

    backend: Literal["existing"] = Field(description=_BACKEND)
    kubeconfig_from: Literal["secret", "stack_reference"] = Field(
        "secret",
        description=f"`secret` (the secret key `{KUBECONFIG_KEY}`) or `stack_reference`.",
    )
    stack_reference: StackReferenceKubeconfig | None = Field(
        None, description="Another stack exporting the kubeconfig."
    )
    context: str | None = Field(
        None, description="kubeconfig context to use (default: its current context)."
    )

    @model_validator(mode="after")
    def _source(self) -> Self:
        if self.kubeconfig_from == "stack_reference" and self.stack_reference is None:
            raise ValueError(
                "kubeconfig_from: stack_reference needs a stack_reference: {stack, output}"
            )
        return self


ClusterConfig = Annotated[
    KindCluster | GkeCluster | EksCluster | ExistingCluster, Field(discriminator="backend")
]


# --- node pools -------------------------------------------------------------------------


class Taint(SpecModel):
    key: str = Field(description="Taint key, e.g. nvidia.com/gpu.")
    value: str = Field("", description="Taint value.")
    effect: TaintEffect = Field(
        NO_SCHEDULE, description="What the node does to pods that do not tolerate the taint."
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _LABEL_KEY.match(value):
            raise ValueError(f"{value!r} is not a valid taint key")
        return value


class Accelerator(SpecModel):
    """The GPUs on each node of a pool, as Kubernetes and Ray see them."""

    resource: str = Field("nvidia.com/gpu", description="Extended resource name, or a MIG profile.")
    count: int = Field(
        1, ge=1, description="Devices of `resource` per node (MIG: slices per node)."
    )
    cloud_type: str | None = Field(None, description="GKE accelerator type, e.g. nvidia-l4.")
    ray_type: str | None = Field(None, description="Ray accelerator_type, e.g. L4 or A100.")


class NodePool(SpecModel):
    """One group of identical nodes; allocatable is what pods may use after system reserve."""

    name: str = Field(
        pattern=_DNS_LABEL,
        description="Pool name (DNS label); also the cloud node pool/group name suffix.",
    )
    machine_type: str | None = Field(None, description="Cloud machine/instance type (gke, eks).")
    cpu: float = Field(gt=0, description="Allocatable CPUs per node.")
    memory: ByteSize = Field(description="Allocatable memory per node, e.g. 30GiB.")
    accelerator: Accelerator | None = Field(
        None, description="GPUs per node; omit for CPU pools."
    )
    labels: LabelMap = Field(
        default_factory=dict,
        description="Node labels; worker groups on the pool select them as nodeSelector.",
    )
    taints: tuple[Taint, ...] = Field(
        (), description="Node taints; worker groups on the pool tolerate exactly these."
    )
    min_nodes: int = Field(
        0, ge=0, description="Autoscaler minimum (0 lets the pool scale to zero)."
    )
    max_nodes: int = Field(
        1, ge=1, description="Autoscaler maximum; kind creates this many nodes."
    )
    spot: bool = Field(False, description="Spot/preemptible capacity (GKE spot, EKS SPOT).")
    disk_gb: int = Field(100, ge=20, description="Boot disk size per node (GB).")

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"min_nodes ({self.min_nodes}) > max_nodes ({self.max_nodes}); "
                "raise max_nodes or lower min_nodes"
            )
        return self

    @property
    def gpus(self) -> int:
        return self.accelerator.count if self.accelerator else 0

    def path(self, field: str) -> str:
        """A field of this pool as errors name it: by pool name, which survives reordering."""
        return f"pools[{self.name}].{field}"


# --- KubeRay and the RayService -----------------------------------------------------------


class PodResources(SpecModel):
    cpu: float = Field(gt=0, description="CPUs (requests = limits).")
    memory: ByteSize = Field(description="Memory (requests = limits), e.g. 4GiB.")


class KubeRayConfig(SpecModel):
    chart_version: Literal["1.7.0"] = Field(
        KUBERAY_VERSION,
        description="kuberay-operator chart version; also the CRDs' release tag.",
    )
    chart_repository: str = Field(
        "https://ray-project.github.io/kuberay-helm/", description="Helm repository of the chart."
    )
    resources: PodResources = Field(
        PodResources(cpu=0.1, memory=ByteSize(512 * 1024**2)),
        description="Operator pod requests = limits.",
    )


class ImageConfig(SpecModel):
    """The app image (built FROM rayproject/ray); its tag is derived from the pinned Ray version."""

    repository: str = Field(
        pattern=r"^[a-z0-9.\-/:]+$",
        description="Registry path; the tag is `<Ray version>-<variant>-<cpu|gpu>`.",
    )
    variant: str = Field(
        "py311", pattern=r"^[a-z0-9.\-]+$", description="Python variant part of the tag."
    )
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent",
        description="imagePullPolicy of every Ray container (`Never` for kind-loaded).",
    )

    @field_validator("repository", mode="before")
    @classmethod
    def _untagged(cls, value: Any) -> Any:
        """Before the pattern check, so a digest (`@`) gets this message rather than a regex."""
        if not isinstance(value, str):
            return value
        repository = value.split("@", 1)[0]
        registry, _, name = repository.rpartition("/")  # localhost:5000/app: a port, no tag
        if ":" in name:
            repository = f"{registry}/{name.split(':', 1)[0]}" if registry else name.split(":")[0]
        if repository != value:
            raise ValueError(
                f"{value!r} carries a tag or digest ({value.removeprefix(repository)!r}); give "
                f"the repository only ({repository!r}): servestack tags the image itself, "
                f"{repository}:{RAY_VERSION}-<variant>-cpu|gpu, from the pinned Ray version "
                "and image.variant"
            )
        return value

    def reference(self, gpu: bool) -> str:
        flavour = "gpu" if gpu else "cpu"
        return f"{self.repository}:{RAY_VERSION}-{self.variant}-{flavour}"


class GcsFaultTolerance(SpecModel):
    """GCS state in Redis so Serve survives a head restart; the password is a Pulumi secret."""

    enabled: bool = Field(False, description="Keep Serve running across head restarts.")
    redis_address: str | None = Field(
        None, pattern=r"^[^\s:/]+:\d{1,5}$", description="host:port of an external Redis."
    )
    password_secret_key: str = Field(
        "redisPassword", description="Name of the secret Pulumi config key holding the password."
    )
    redis_cidrs: tuple[Cidr, ...] = Field(
        (), description="Addresses of the Redis endpoint, the only egress the NetworkPolicies "
        "give the GCS; derived when redis_address is an IP.",
    )

    @model_validator(mode="after")
    def _address(self) -> Self:
        if self.enabled and not self.redis_address:
            raise ValueError("gcs_fault_tolerance.enabled needs redis_address (host:port)")
        return self

    @property
    def redis_egress_cidrs(self) -> tuple[str, ...]:
        """`redis_cidrs`, or the address itself when `redis_address` is an IP literal."""
        if self.redis_cidrs or not self.redis_address:
            return self.redis_cidrs
        host = self.redis_address.rsplit(":", 1)[0]
        try:
            return (str(ipaddress.ip_network(host)),)
        except ValueError:
            return ()

    @property
    def redis_port(self) -> int | None:
        return int(self.redis_address.rsplit(":", 1)[1]) if self.redis_address else None


class AutoscalerConfig(SpecModel):
    idle_timeout_s: int = Field(
        60, ge=0, description="Seconds an idle worker pod lives before removal."
    )
    upscaling_mode: Literal["Default", "Aggressive", "Conservative"] = Field(
        "Default", description="How fast the autoscaler adds pods."
    )
    resources: PodResources = Field(
        PodResources(cpu=0.5, memory=ByteSize(512 * 1024**2)),
        description="Autoscaler sidecar requests = limits.",
    )


class RayServiceConfig(SpecModel):
    """Cluster-level knobs of the one RayService; the worker groups are derived, not declared."""

    name: str = Field(
        "servestack", pattern=_DNS_LABEL,
        description="RayService name; the Serve Service is `<name>-serve-svc`.",
    )
    upgrade_strategy: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"] = Field(
        description="How a cluster-level change rolls out (explicit)."
    )
    head: PodResources = Field(
        PodResources(cpu=1, memory=ByteSize(4 * 1024**3)),
        description="Head container requests = limits (the head runs no replicas).",
    )
    worker_overhead: PodResources = Field(
        PodResources(cpu=0.5, memory=ByteSize(1024**3)),
        description="Per worker pod on top of its replicas: raylet, agents and object store.",
    )
    max_replicas_per_pod: int = Field(
        4, ge=1, description="Upper bound on replicas packed into one worker pod."
    )
    cpu_pool: str | None = Field(
        None, description="Pool for the CPU worker group (may be tainted); default: the first "
        "pool without accelerator and taints. See docs/capacity.md.",
    )
    autoscaler: AutoscalerConfig = Field(
        AutoscalerConfig(), description="In-tree autoscaler sidecar."
    )
    gcs_fault_tolerance: GcsFaultTolerance = Field(
        GcsFaultTolerance(), description="GCS state in an external Redis."
    )

    @field_validator("upgrade_strategy")
    @classmethod
    def _modelled_strategy(cls, value: str) -> str:
        if value == "NewClusterWithIncrementalUpgrade":
            raise ValueError(
                "NewClusterWithIncrementalUpgrade needs upgradeStrategy.clusterUpgradeOptions "
                "(a Gateway API class, step size and interval), which servestack does not "
                "model yet; use NewCluster (or None)"
            )
        return value


class HttpOptions(SpecModel):
    """Ray's `http_options`, written into the Serve config as they are."""

    host: str = Field("0.0.0.0", description="Address the proxies bind.")
    port: int = Field(
        8000, ge=1, le=65535,
        description="Serve HTTP port (container port `serve`, the Service's port).",
    )
    request_timeout_s: float | None = Field(
        60.0, gt=0,
        description="Ray's proxy answers 408 when a request (body received) has no response "
        "after this long; null waits forever.",
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="Idle keep-alive connections of the proxies are closed after "
        "this long.",
    )


class ServeOptions(SpecModel):
    proxy_location: ProxyLocation = Field("EveryNode", description="Where Serve runs HTTP proxies.")
    http: HttpOptions = Field(HttpOptions(), description="Serve HTTP options.")
    ingress: IngressSettings = Field(
        IngressSettings(),
        description="servestack's ingress layer (apps/ingress.py): body timeout and size, "
        "retries; carried to every proxy and ingress replica as $SERVESTACK_INGRESS.",
    )
    haproxy: bool = Field(
        True,
        description="Serve's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY=1): HAProxy on every "
        "node takes the HTTP port and sends requests straight to the ingress replicas' own "
        "HTTP servers, skipping the Python proxy hop. false: Ray's Python proxy.",
    )
    ingress_drain_s: float = Field(
        30.0, ge=0,
        description="Under serve.haproxy, seconds a stopping ingress replica stays reachable "
        "(RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S, Ray's default 30) so the HAProxy of "
        "every node drops it from its backends before it refuses connections; Ray waits 5 s "
        "more before a force-kill. One node needs only its own HAProxy's reload (about 1 s); a "
        "cluster needs the controller's broadcast to reach every node too.",
    )


# --- observability and security ---------------------------------------------------------

KUBE_PROMETHEUS_STACK_VERSION: Final = "81.6.2"


class ObservabilityConfig(SpecModel):
    """How Prometheus finds Ray's metrics, where Grafana's dashboards go, and who alerts.

    With the Prometheus Operator (installed here or already in the cluster) the stack adds
    PodMonitors, a ServiceMonitor and PrometheusRules; without it, scrape annotations.
    """

    prometheus_operator: bool = Field(
        False, description="The cluster runs the Prometheus Operator (monitoring.coreos.com CRDs).",
    )
    install_kube_prometheus_stack: bool = Field(
        False, description="Install the kube-prometheus-stack chart (implies prometheus_operator).",
    )
    kube_prometheus_stack_version: str = Field(
        KUBE_PROMETHEUS_STACK_VERSION, pattern=r"^\d+\.\d+\.\d+$",
        description="Pinned chart version; bump deliberately.",
    )
    kube_prometheus_stack_repository: str = Field(
        "https://prometheus-community.github.io/helm-charts",
        description="Helm repository of the chart.",
    )
    monitoring_namespace: str = Field(
        "monitoring", pattern=_DNS_LABEL,
        description="Where Prometheus and Grafana run: dashboards go here and only this "
        "namespace may scrape the metrics ports.",
    )
    prometheus_release: str = Field(
        "kube-prometheus-stack", pattern=_DNS_LABEL,
        description="The `release` label kube-prometheus-stack's Prometheus selects monitors "
        "and rules by (its Helm release name).",
    )
    metrics_port: int = Field(
        8080, ge=1, le=65535,
        description="Ray's metrics export port on every node (Ray itself picks a random one).",
    )
    grafana_dashboards: bool = Field(True, description="Provision Ray's Grafana dashboards.")

    @property
    def uses_prometheus_operator(self) -> bool:
        return self.prometheus_operator or self.install_kube_prometheus_stack


class NetworkPeer(SpecModel):
    """Pods allowed to call Serve: by namespace labels, pod labels, or both (both must match)."""

    namespace_labels: LabelMap = Field(
        default_factory=dict, description="Namespace labels a client must carry."
    )
    pod_labels: LabelMap = Field(
        default_factory=dict, description="Pod labels a client must carry."
    )

    @model_validator(mode="after")
    def _selective(self) -> Self:
        if not self.namespace_labels and not self.pod_labels:
            raise ValueError(
                "a peer with neither namespace_labels nor pod_labels would admit every pod of "
                "the namespace; name the ingress controller's labels"
            )
        return self


class SecurityConfig(SpecModel):
    """Who may reach the Ray cluster, and how Ray itself authenticates. Safe by default."""

    ray_token_auth: bool = Field(
        True, description="Ray token auth (KubeRay authOptions); the token is a Pulumi secret.",
    )
    network_policies: bool = Field(
        True, description="Default-deny NetworkPolicies with only the paths Ray and Serve need.",
    )
    serve_clients: tuple[NetworkPeer, ...] = Field(
        (NetworkPeer(namespace_labels={SERVE_CLIENT_LABEL: "true"}),),
        description="Who may call Serve's HTTP port: the ingress path. Default: pods in "
        "namespaces labelled servestack.io/serve-client=true.",
    )
    api_server_cidrs: tuple[str, ...] = Field(
        (), description="Where the Kubernetes API server is, for the head's autoscaler egress; "
        "empty: what the backend knows (required on `existing`).",
    )
    api_server_ports: tuple[int, ...] = Field(
        (443, 6443), min_length=1, description="API server ports the head's autoscaler may reach."
    )

    @field_validator("api_server_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR such as 10.0.0.0/8") from None
        return value

    @field_validator("api_server_ports")
    @classmethod
    def _ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [port for port in value if not 1 <= port <= 65535]
        if bad:
            raise ValueError(f"{bad} are not TCP ports (1-65535)")
        return tuple(sorted(set(value)))


# --- model sources ---------------------------------------------------------------------------


def _http_url(value: str | None) -> str | None:
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://mlflow.example:443")
    return value


HttpUrl = Annotated[str | None, AfterValidator(_http_url)]


class ModelCacheVolume(SpecModel):
    """The per-node model cache every Ray pod mounts (apps/model_source/cache.py)."""

    volume: Literal["emptyDir", "hostPath", "persistentVolumeClaim"] = Field(
        "emptyDir", description="emptyDir: per pod, counted as ephemeral storage; hostPath: "
        "shared by every pod on the node; persistentVolumeClaim: an existing (ReadWriteMany) "
        "claim shared by all pods.",
    )
    size: ByteSize = Field(
        ByteSize(20 * 1024**3), ge=1024**3,
        description="The volume's size (emptyDir sizeLimit and ephemeral-storage request); the "
        "cache keeps at most half of it, the rest is room for a download in progress.",
    )
    host_path: str | None = Field(
        None, pattern=r"^/[^\s]*$", description="Node directory, for volume hostPath.")
    claim_name: str | None = Field(
        None, pattern=_DNS_LABEL, description="Existing claim, for volume persistentVolumeClaim.")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.volume == "hostPath" and not self.host_path:
            raise ValueError("volume hostPath needs host_path")
        if self.volume == "persistentVolumeClaim" and not self.claim_name:
            raise ValueError("volume persistentVolumeClaim needs claim_name")
        return self


class ModelSourcesConfig(SpecModel):
    """Where the apps' s3://, gs:// and mlflow:// models come from (docs/models.md). The
    buckets themselves are read from the apps' model URIs, never repeated here."""

    s3_endpoint: HttpUrl = Field(
        None, description="An S3-compatible endpoint (AWS_ENDPOINT_URL_S3); null: AWS S3.")
    s3_credentials_secret: str | None = Field(
        None, pattern=_DNS_LABEL,
        description="Existing Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, for an "
        "S3-compatible endpoint; on EKS, AWS S3 is read through Pod Identity instead.",
    )
    object_store_cidrs: tuple[Cidr, ...] = Field(
        (), description="Addresses of the object store (S3 endpoint or GCS), the only egress "
        "the NetworkPolicies give Ray pods for it.",
    )
    mlflow_tracking_uri: HttpUrl = Field(
        None, description="MLflow tracking/registry server that mlflow:// URIs resolve against.")
    mlflow_cidrs: tuple[Cidr, ...] = Field(
        (), description="Addresses of the MLflow server (its artifacts are proxied by it).")
    mlflow_token_secret_key: str | None = Field(
        None, description="Name of the secret Pulumi config key holding MLflow's token.")
    cache: ModelCacheVolume = Field(ModelCacheVolume(), description="The per-node model cache.")


# --- the stack ---------------------------------------------------------------------------


AppOverrides = dict[str, Any]


class StackConfig(SpecModel):
    """Everything one stack file says, validated together."""

    stack: str = Field(
        pattern=r"^[a-z][a-z0-9-]*$",
        description="Stack name, as in stacks/Pulumi.<stack>.yaml; not a config key.",
    )
    namespace: str = Field(
        "servestack", pattern=_DNS_LABEL,
        description="Namespace of the KubeRay operator and the RayService.",
    )
    cluster: ClusterConfig = Field(
        description="Which cluster to run on; `backend` selects the fields that apply."
    )
    pools: tuple[NodePool, ...] = Field(
        min_length=1, description="Node pools: created on kind/GKE/EKS, described for `existing`."
    )
    image: ImageConfig = Field(description="The app image (see Dockerfile).")
    kuberay: KubeRayConfig = Field(KubeRayConfig(), description="The KubeRay operator chart.")
    rayservice: RayServiceConfig = Field(
        description="The RayService; worker groups are derived, not declared."
    )
    serve: ServeOptions = Field(
        ServeOptions(), description="Serve's proxies and HTTP options (part of serveConfigV2)."
    )
    observability: ObservabilityConfig = Field(
        ObservabilityConfig(), description="Metrics, dashboards and alerts."
    )
    security: SecurityConfig = Field(
        SecurityConfig(), description="Who may reach Ray and how Ray authenticates."
    )
    model_sources: ModelSourcesConfig = Field(
        ModelSourcesConfig(), description="Object stores and MLflow the apps' models come from."
    )
    apps: dict[str, AppOverrides | None] = Field(
        min_length=1, description="Apps this stack deploys (catalog names) with partial overrides."
    )

    @field_validator("apps")
    @classmethod
    def _known_apps(cls, value: dict[str, AppOverrides | None]) -> dict[str, AppOverrides | None]:
        unknown = sorted(set(value) - set(CATALOG))
        if unknown:
            raise ValueError(
                f"unknown app(s) {unknown}; servestack ships {sorted(CATALOG)}"
            )
        return value

    @model_validator(mode="after")
    def _pools_unique(self) -> Self:
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node pool names must be unique; repeated: {dupes}")
        return self

    @model_validator(mode="after")
    def _egress_destinations_known(self) -> Self:
        """NetworkPolicies match addresses: every egress they allow must have one."""
        if not self.security.network_policies:
            return self
        problems = []
        if isinstance(self.cluster, ExistingCluster) and not self.security.api_server_cidrs:
            problems.append((
                "security.api_server_cidrs",
                "servestack cannot know where this cluster's API server is; give the addresses "
                "`kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes`"
                " lists (the head's autoscaler egress goes there and nowhere else)",
            ))
        ft = self.rayservice.gcs_fault_tolerance
        if ft.enabled and not ft.redis_egress_cidrs:
            problems.append((
                "rayservice.gcs_fault_tolerance.redis_cidrs",
                f"redis_address {ft.redis_address!r} is a DNS name, but NetworkPolicies match "
                "addresses: give the Redis endpoint's address range (e.g. a Memorystore "
                "instance's reserved range) so only the GCS may reach it",
            ))
        if problems:
            raise SpecError(problems)
        return self

    @model_validator(mode="after")
    def _model_sources_reachable(self) -> Self:
        """Every remote model URI needs its endpoint, an identity and (with NetworkPolicies)
        the addresses its egress may go to; the buckets come from the URIs themselves."""
        try:
            uris = self.model_uris
        except SpecError:
            return self  # parse_stack_config reports the app overrides themselves
        schemes = {urlsplit(uri).scheme for uri in uris}
        sources, backend = self.model_sources, self.cluster.backend
        problems = []
        if "mlflow" in schemes and not sources.mlflow_tracking_uri:
            problems.append(("model_sources.mlflow_tracking_uri",
                             "an app loads an mlflow:// model: give the MLflow server's URL"))
        if "gs" in schemes and backend != "gke":
            problems.append(("model_sources", f"gs:// models are read through GKE Workload "
                             f"Identity; the {backend} backend cannot grant it"))
        if "s3" in schemes and backend != "eks" and not sources.s3_credentials_secret:
            problems.append(("model_sources.s3_credentials_secret",
                             f"s3:// models on the {backend} backend need a Secret with "
                             "credentials (EKS grants them through Pod Identity)"))
        if self.security.network_policies:
            if schemes & {"s3", "gs"} and not sources.object_store_cidrs:
                problems.append(("model_sources.object_store_cidrs",
                                 "NetworkPolicies match addresses: give the object store's "
                                 "address ranges so Ray pods may reach it and nothing else"))
            if "mlflow" in schemes and not sources.mlflow_cidrs:
                problems.append(("model_sources.mlflow_cidrs",
                                 "NetworkPolicies match addresses: give the MLflow server's "
                                 "address ranges"))
        if problems:
            raise SpecError(problems)
        return self

    @property
    def mlflow_token_key(self) -> str | None:
        """The secret config key of MLflow's token, when an app loads from MLflow at all."""
        key = self.model_sources.mlflow_token_secret_key
        uses_mlflow = any(urlsplit(uri).scheme == "mlflow" for uri in self.model_uris)
        return key if key and uses_mlflow else None

    @property
    def model_uris(self) -> tuple[str, ...]:
        """The remote model URIs (s3/gs/mlflow) the stack's apps load, sorted."""
        found = {uri for app in self.applications for deployment in app.deployments
                 if deployment.user_config is not None
                 for uri in deployment.user_config.model_uris() if is_remote(uri)}
        return tuple(sorted(found))

    @model_validator(mode="after")
    def _pools_fit_backend(self, info: ValidationInfo) -> Self:
        """The cluster backend's demands on every pool, each named by its own field path."""
        if (info.context or {}).get(BACKEND_RULES) is False:
            return self
        problems = self.cluster.pool_problems(self.pools)
        if problems:
            raise SpecError(problems)
        return self

    @cached_property
    def applications(self) -> tuple[ApplicationSpec, ...]:
        """The stack's effective app specs: catalog defaults with this stack's overrides."""
        return resolve_applications(self.apps)

    def pool(self, name: str) -> NodePool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)


def resolve_applications(apps: Mapping[str, AppOverrides | None]) -> tuple[ApplicationSpec, ...]:
    """Deep-merge each app's overrides onto its default spec, in a stable (sorted) order."""
    resolved = []
    for name in sorted(apps):
        try:
            resolved.append(CATALOG[name].with_overrides(apps[name] or {}))
        except SpecError as error:
            raise error.prefixed(f"apps.{name}") from None
    check_unique_applications(resolved)
    return tuple(resolved)


def parse_stack_config(
    stack: str, raw: Mapping[str, Any], backend_rules: bool = True,
) -> StackConfig:
    """Validate a stack's `servestack:` keys (prefix already stripped), specs included.

    Raises StackConfigError listing every problem; nothing is built from a config that fails.
    `backend_rules=False` skips the cluster backend's pool rules only, so that the capacity
    plan can still be checked (and its problems reported in the same run) when they fail.
    """
    try:
        config = StackConfig.model_validate({"stack": stack, **raw},
                                            context={BACKEND_RULES: backend_rules})
    except ValidationError as error:
        problems = list(SpecError.from_validation_error(error).problems)
        raise StackConfigError(stack, problems) from None
    try:
        _ = config.applications
    except SpecError as error:
        raise StackConfigError(stack, list(error.problems)) from None
    return config

