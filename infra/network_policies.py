"""NetworkPolicies for the stack's namespace: deny by default, then only the paths Ray needs.

Ingress: Ray pods talk to each other on any port (GCS, raylets, object transfer and worker
ports are dynamic); the KubeRay operator reaches the head's dashboard (it deploys
serveConfigV2 and reads Serve status there); the stack's `security.serve_clients` reach
Serve's HTTP port and nothing else; the monitoring namespace scrapes the metrics ports.
Egress, scoped per pod (nothing else is allowed out):
- every Ray pod: the other Ray pods and cluster DNS;
- the head only: the Kubernetes API server's own addresses (its autoscaler sidecar), never a
  0.0.0.0/0 block. NetworkPolicies see the Service address after DNAT, so the rule names
  where `kubernetes.default` forwards to, which each backend knows (`Cluster.api_server_cidrs`)
  unless `security.api_server_cidrs` says otherwise;
- the workers only, when the apps load s3://, gs:// or mlflow:// models: the object store's
  and the MLflow server's addresses (`model_sources.*_cidrs`) on their ports;
- the head and KubeRay's Redis cleanup Job only, with GCS fault tolerance: the Redis
  endpoint's addresses (`gcs_fault_tolerance.redis_cidrs`) on its port.
Only standard `networking.k8s.io/v1` fields (pod/namespace selectors, ipBlock, ports) are
used, which Dataplane V2 (Cilium), Calico and the VPC CNI network policy agent all enforce.
Ports are referenced by the names the pod templates declare.
Under Serve's HAProxy ingress (`serve.haproxy`) every node's HAProxy listens on the serve port
and forwards to the ingress replicas' own HTTP ports (30000-31000) and the head's fallback
Python proxy (8500) on other Ray pods: the Ray-to-Ray rule already admits that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import NetworkPeer, StackConfig
from infra.kuberay import operator_pod_labels
from infra.model_access import model_egress
from infra.names import (
    DASHBOARD_PORT_NAME,
    DNS_POD_LABELS,
    HAPROXY_METRICS_PORT_NAME,
    HEAD_METRICS_PORT_NAMES,
    METRICS_PORT_NAME,
    NAMESPACE_NAME_LABEL,
    OPERATOR_METRICS_PORT_NAME,
    RAY_HEAD_NODE_TYPE,
    RAY_NODE_TYPE_LABEL,
    RAY_WORKER_NODE_TYPE,
    SERVE_PORT_NAME,
    stack_labels,
)
from infra.rayservice import head_excluded_from_serve
from infra.worker_groups import rayservice_labels

NETWORK_POLICIES_COMPONENT = "servestack:index:NetworkPolicies"
DNS_NAMESPACE = "kube-system"
REDIS_CLEANUP_NODE_TYPE = "redis-cleanup"
"""KubeRay builds its GCS fault-tolerance Redis cleanup Job from the head's pod template and
relabels it `ray.io/node-type: redis-cleanup` (raycluster_controller.go, buildRedisCleanupJob)."""


def ray_pods(stack: StackConfig) -> dict[str, Any]:
    """Every head and worker pod of the stack's RayService (our own pod template labels)."""
    return {"matchLabels": dict(rayservice_labels(stack))}


def ray_head(stack: StackConfig) -> dict[str, Any]:
    return {"matchLabels": {**rayservice_labels(stack), RAY_NODE_TYPE_LABEL: RAY_HEAD_NODE_TYPE}}


def ray_workers(stack: StackConfig) -> dict[str, Any]:
    return {"matchLabels": {**rayservice_labels(stack), RAY_NODE_TYPE_LABEL: RAY_WORKER_NODE_TYPE}}


def gcs_clients(stack: StackConfig) -> dict[str, Any]:
    """The pods that talk to the GCS Redis: the head's GCS and KubeRay's cleanup Job."""
    return {"matchExpressions": [{"key": RAY_NODE_TYPE_LABEL, "operator": "In",
                                  "values": [RAY_HEAD_NODE_TYPE, REDIS_CLEANUP_NODE_TYPE]}],
            "matchLabels": dict(rayservice_labels(stack))}


def _namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _peer(peer: NetworkPeer) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if peer.namespace_labels:
        selector["namespaceSelector"] = {"matchLabels": dict(peer.namespace_labels)}
    if peer.pod_labels:
        selector["podSelector"] = {"matchLabels": dict(peer.pod_labels)}
    return selector


def _tcp(*ports: int | str) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": "TCP"} for port in ports]


def _policy(stack: StackConfig, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "labels": stack_labels(stack.stack),
            "name": name,
            "namespace": stack.namespace,
        },
        "spec": spec,
    }


def network_policy_manifests(stack: StackConfig,
                             api_server_cidrs: Sequence[str]) -> list[dict[str, Any]]:
    """The stack's NetworkPolicies, in a stable order; empty when the stack turns them off.

    `api_server_cidrs`: where the cluster's `kubernetes` Service forwards to (after DNAT).
    """
    if not stack.security.network_policies:
        return []
    ft = stack.rayservice.gcs_fault_tolerance
    if not api_server_cidrs or (ft.enabled and not ft.redis_egress_cidrs):
        # An egress rule with an empty `to` admits every destination: never write one.
        raise ValueError("NetworkPolicies need the API server's and Redis' addresses")
    return [*_ingress_policies(stack), *_egress_policies(stack, api_server_cidrs)]


def _ingress_policies(stack: StackConfig) -> list[dict[str, Any]]:
    """Deny by default, then admit the cluster itself, the operator, Serve's clients and
    the monitoring namespace, each to the ports it needs."""
    ray = ray_pods(stack)
    monitoring = _namespace(stack.observability.monitoring_namespace)
    operator_ports = [DASHBOARD_PORT_NAME]
    if not head_excluded_from_serve(stack):
        operator_ports.append(SERVE_PORT_NAME)  # KubeRay probes a serving head's proxy
    return [
        _policy(stack, "default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}),
        _policy(stack, "ray-cluster-internal", {
            "ingress": [{"from": [{"podSelector": ray}]}],
            "podSelector": ray,
            "policyTypes": ["Ingress"],
        }),
        _policy(stack, "ray-head-from-operator", {
            "ingress": [{"from": [{"podSelector": {"matchLabels": operator_pod_labels()}}],
                         "ports": _tcp(*operator_ports)}],
            "podSelector": ray_head(stack),
            "policyTypes": ["Ingress"],
        }),
        _policy(stack, "serve-from-clients", {
            "ingress": [{"from": [_peer(p) for p in stack.security.serve_clients],
                         "ports": _tcp(SERVE_PORT_NAME)}],
            "podSelector": ray,
            "policyTypes": ["Ingress"],
        }),
        _policy(stack, "ray-metrics-from-monitoring", {
            "ingress": [{"from": [monitoring],
                         "ports": _tcp(*_metrics_ports(stack))}],
            "podSelector": ray,
            "policyTypes": ["Ingress"],
        }),
        _policy(stack, "operator-metrics-from-monitoring", {
            "ingress": [{"from": [monitoring], "ports": _tcp(OPERATOR_METRICS_PORT_NAME)}],
            "podSelector": {"matchLabels": operator_pod_labels()},
            "policyTypes": ["Ingress"],
        }),
    ]


def _egress_policies(stack: StackConfig,
                     api_server_cidrs: Sequence[str]) -> list[dict[str, Any]]:
    """What Ray pods may reach: in-cluster, the API server (head), model stores (workers)
    and Redis (GCS clients, under GCS fault tolerance)."""
    ft = stack.rayservice.gcs_fault_tolerance
    policies = [
        _policy(stack, "ray-egress", {"egress": _ray_egress(stack), "podSelector": ray_pods(stack),
                                      "policyTypes": ["Egress"]}),
        _policy(stack, "ray-head-egress-api-server", {
            "egress": [{"ports": _tcp(*stack.security.api_server_ports),
                        "to": [{"ipBlock": {"cidr": cidr}} for cidr in api_server_cidrs]}],
            "podSelector": ray_head(stack),
            "policyTypes": ["Egress"],
        }),
    ]
    models = model_egress(stack)
    if models:  # only the workers run replicas, so only they fetch models
        policies.append(_policy(stack, "ray-workers-egress-models", {
            "egress": models, "podSelector": ray_workers(stack), "policyTypes": ["Egress"],
        }))
    if ft.enabled and ft.redis_port is not None:
        policies.append(_policy(stack, "ray-gcs-egress-redis", {
            "egress": [{"ports": _tcp(ft.redis_port),
                        "to": [{"ipBlock": {"cidr": cidr}} for cidr in ft.redis_egress_cidrs]}],
            "podSelector": gcs_clients(stack),
            "policyTypes": ["Egress"],
        }))
    return policies


def _metrics_ports(stack: StackConfig) -> list[str]:
    haproxy = [HAPROXY_METRICS_PORT_NAME] if stack.serve.haproxy else []
    return [METRICS_PORT_NAME, *HEAD_METRICS_PORT_NAMES, *haproxy]


def _ray_egress(stack: StackConfig) -> list[dict[str, Any]]:
    dns = {**_namespace(DNS_NAMESPACE), "podSelector": {"matchLabels": dict(DNS_POD_LABELS)}}
    return [
        {"to": [{"podSelector": ray_pods(stack)}]},
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
         "to": [dns]},
    ]


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    stack: StackConfig
    api_server_cidrs: pulumi.Input[Sequence[str]] = field(default_factory=tuple)
    """The backend's API server addresses; `security.api_server_cidrs`, when set, wins."""


def api_server_cidrs_for(args: NetworkPoliciesArgs) -> pulumi.Output[list[str]]:
    declared = args.stack.security.api_server_cidrs
    source: pulumi.Input[Sequence[str]] = declared if declared else args.api_server_cidrs
    return pulumi.Output.from_input(source).apply(lambda cidrs: sorted(set(cidrs)))


def _spec_at(stack: StackConfig, index: int) -> Callable[[list[str]], dict[str, Any]]:
    def spec(api_server_cidrs: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = network_policy_manifests(stack, api_server_cidrs)[index]["spec"]
        return found
    return spec


class NetworkPolicies(pulumi.ComponentResource):
    """One NetworkPolicy per allowed path, all in the stack's namespace."""

    policies: tuple[k8s.networking.v1.NetworkPolicy, ...]

    def __init__(self, name: str, args: NetworkPoliciesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NETWORK_POLICIES_COMPONENT, name, None, opts)
        cidrs = api_server_cidrs_for(args)
        # The names and number of policies never depend on the addresses, only their specs.
        shapes = network_policy_manifests(args.stack, ["0.0.0.0/32"])
        policies = []
        for index, manifest in enumerate(shapes):
            policy_name = manifest["metadata"]["name"]
            spec: pulumi.Output[Any] = cidrs.apply(_spec_at(args.stack, index))
            policies.append(k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}",
                metadata=manifest["metadata"],
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            ))
        self.policies = tuple(policies)
        self.register_outputs({"policies": [m["metadata"]["name"] for m in shapes]})
