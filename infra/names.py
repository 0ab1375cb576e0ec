"""Names other systems read: the only place each label, port name, taint effect and config key
is spelled. Everything else imports them, so a rename is one edit and a test can hunt strays
(tests/infra/test_names.py: every `*_LABEL`, `*_ANNOTATION` and `*_PORT_NAME` here, and every
taint effect). It knows no cluster backend: the label a platform puts on every node of a pool
is that backend's `node_pool_label` (infra/clusters/<backend>_spec.py), hunted the same way.

Pure: imports nothing of ours, so the policy pack and the tool may use it as well as the program.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

KUBECONFIG_KEY: Final = "kubeconfig"
"""Secret config key holding the kubeconfig: `pulumi config set --secret servestack:kubeconfig`."""

# --- labels on the objects we create ------------------------------------------------------

PRODUCT: Final = "servestack"
"""The value of `app.kubernetes.io/part-of` on everything, and of `name` on Ray pods."""
APP_NAME_LABEL: Final = "app.kubernetes.io/name"
KUBERAY_CHART: Final = "kuberay-operator"  # also the operator Pod's APP_NAME_LABEL value
APP_INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
APP_PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
STACK_LABEL: Final = "servestack.io/stack"
SERVE_CLIENT_LABEL: Final = "servestack.io/serve-client"
"""The namespace label the default `security.serve_clients` admits to Serve's port."""
GRAFANA_DASHBOARD_LABEL: Final = "grafana_dashboard"
"""What kube-prometheus-stack's Grafana sidecar watches ConfigMaps for (value "1")."""
PROMETHEUS_RELEASE_LABEL: Final = "release"
"""kube-prometheus-stack's Prometheus selects monitors and rules by its Helm release name."""


def stack_labels(stack: str) -> dict[str, str]:
    """What every object of the stack carries, so one selector finds all of a stack."""
    return {APP_PART_OF_LABEL: PRODUCT, STACK_LABEL: stack}


def ray_pod_labels(stack: str, rayservice: str) -> dict[str, str]:
    """Our labels on a RayService and all made for it; NetworkPolicies and PodMonitors select
    its pods by them."""
    return {APP_INSTANCE_LABEL: rayservice, APP_NAME_LABEL: PRODUCT, STACK_LABEL: stack}


# --- Ray node labels (a worker group's `labels`; a deployment's `label_selector`) ---------

WORKER_GROUP_LABEL: Final = "servestack.io/worker-group"
"""The Ray node label naming a node's worker group. KubeRay passes a group's `labels` to
`ray start --labels`, and Ray's KubeRay translation gives them to the autoscaler's node type,
so a replica selecting its group is placed and scaled there and never on another group's
spare CPUs. Not `ray.io/node-group`: Ray reserves the `ray.io/` prefix, and its own
`ray.io/node-group` label is unknown to the autoscaler for nodes it has not launched yet."""


def worker_group_node_labels(group: str) -> dict[str, str]:
    """The Ray node labels of every node of a worker group."""
    return {WORKER_GROUP_LABEL: group}


def worker_group_selector(group: str) -> dict[str, str]:
    """A replica's `label_selector`: only nodes of this worker group."""
    return {WORKER_GROUP_LABEL: group}


# --- labels others set --------------------------------------------------------------------

RAY_CLUSTER_LABEL: Final = "ray.io/cluster"
RAY_GROUP_LABEL: Final = "ray.io/group"
RAY_NODE_TYPE_LABEL: Final = "ray.io/node-type"
"""KubeRay sets these three on every Ray pod it creates."""
RAY_HEAD_NODE_TYPE: Final = "head"
RAY_HEAD_GROUP: Final = "headgroup"
"""KubeRay's `ray.io/node-type` and `ray.io/group` values on the head pod."""
RAY_WORKER_NODE_TYPE: Final = "worker"
"""KubeRay's `ray.io/node-type` on every worker pod."""
APP_CREATED_BY_LABEL: Final = "app.kubernetes.io/created-by"
KUBERAY_CREATED_BY: Final = "kuberay-operator"
"""KubeRay's `app.kubernetes.io/created-by` value on the pods it creates."""
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace."""
K8S_APP_LABEL: Final = "k8s-app"
DNS_POD_LABELS: Final[Mapping[str, str]] = {K8S_APP_LABEL: "kube-dns"}
"""CoreDNS/kube-dns on GKE, EKS and kind."""

PodSecurityMode = Literal["enforce", "audit", "warn"]
POD_SECURITY_MODES: Final[tuple[PodSecurityMode, ...]] = get_args(PodSecurityMode)
POD_SECURITY_ENFORCE_LABEL: Final = "pod-security.kubernetes.io/enforce"
POD_SECURITY_AUDIT_LABEL: Final = "pod-security.kubernetes.io/audit"
POD_SECURITY_WARN_LABEL: Final = "pod-security.kubernetes.io/warn"
POD_SECURITY_LABELS: Final[Mapping[PodSecurityMode, str]] = {
    "enforce": POD_SECURITY_ENFORCE_LABEL,
    "audit": POD_SECURITY_AUDIT_LABEL,
    "warn": POD_SECURITY_WARN_LABEL,
}
"""The API server's Pod Security admission reads a namespace's level from these."""


def pod_security_version_label(mode: PodSecurityMode) -> str:
    return f"{POD_SECURITY_LABELS[mode]}-version"


# --- annotations --------------------------------------------------------------------------

PROMETHEUS_SCRAPE_ANNOTATION: Final = "prometheus.io/scrape"
PROMETHEUS_PORT_ANNOTATION: Final = "prometheus.io/port"
PROMETHEUS_PATH_ANNOTATION: Final = "prometheus.io/path"
METRICS_PATH: Final = "/metrics"


def prometheus_scrape_annotations(port: int) -> dict[str, str]:
    """What a Prometheus without the Operator's monitors reads to find a pod's metrics."""
    return {PROMETHEUS_PATH_ANNOTATION: METRICS_PATH, PROMETHEUS_PORT_ANNOTATION: str(port),
            PROMETHEUS_SCRAPE_ANNOTATION: "true"}


# --- container port names (NetworkPolicies and monitors refer to ports by these) ----------

SERVE_PORT_NAME: Final = "serve"
METRICS_PORT_NAME: Final = "metrics"
"""Ray's metrics export port, on head and workers."""
AUTOSCALER_METRICS_PORT_NAME: Final = "as-metrics"
DASHBOARD_METRICS_PORT_NAME: Final = "dash-metrics"
HEAD_METRICS_PORT_NAMES: Final = (AUTOSCALER_METRICS_PORT_NAME, DASHBOARD_METRICS_PORT_NAME)
"""The head's extra metrics ports; they simply match no worker container."""
HAPROXY_METRICS_PORT_NAME: Final = "haproxy-metrics"
"""Serve's HAProxy ingress exports its own Prometheus metrics here (serve.haproxy)."""
DASHBOARD_PORT_NAME: Final = "dashboard"
GCS_PORT_NAME: Final = "gcs-server"
CLIENT_PORT_NAME: Final = "client"
OPERATOR_METRICS_PORT_NAME: Final = "http"
"""The KubeRay chart's container port 8080: /metrics and probes."""

# --- taints -------------------------------------------------------------------------------

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
"""Kubernetes' spelling, which the stack file uses too."""
TAINT_EFFECTS: Final[tuple[TaintEffect, ...]] = get_args(TaintEffect)
NO_SCHEDULE: Final[TaintEffect] = "NoSchedule"
CLOUD_TAINT_EFFECTS: Final[Mapping[TaintEffect, str]] = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
"""The GKE node-pool API and the EKS managed node-group API spell effects the same way."""


def serve_service_name(rayservice: str) -> str:
    """KubeRay names the Serve Service after the RayService; outside an incremental upgrade
    it follows the cluster that serves."""
    return f"{rayservice}-serve-svc"


def kuberay_gateway_name(rayservice: str) -> str:
    """The Gateway KubeRay 1.7.0 creates for an incremental upgrade (`createGateway`), where
    it splits traffic between the two clusters."""
    return f"{rayservice}-gateway"


GATEWAY_API = "gateway.networking.k8s.io"
GATEWAY_API_VERSION = f"{GATEWAY_API}/v1"
"""The Gateway API group and version of the front door's objects (the program and the pack)."""
