"""NetworkPolicies for the stack's namespace: deny by default, then only the paths Ray needs.

Ingress: Ray pods talk to each other on any port (GCS, raylets, object transfer and worker
ports are dynamic); the KubeRay operator reaches the head's dashboard (it deploys
serveConfigV2 and reads Serve status there); the stack's `security.serve_clients` reach
Serve's HTTP port and nothing else; the monitoring namespace scrapes the metrics ports.
Egress from Ray pods: each other, cluster DNS, the GCS Redis when fault tolerance is on, and
the API server from the head only (its autoscaler sidecar). Weights ship in the image, so
nothing else is allowed out. Ports are referenced by the names the pod templates declare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import NetworkPeer, StackConfig
from infra.kuberay import operator_pod_labels
from infra.names import (
    DASHBOARD_PORT_NAME,
    DNS_POD_LABELS,
    HEAD_METRICS_PORT_NAMES,
    METRICS_PORT_NAME,
    NAMESPACE_NAME_LABEL,
    OPERATOR_METRICS_PORT_NAME,
    RAY_HEAD_NODE_TYPE,
    RAY_NODE_TYPE_LABEL,
    SERVE_PORT_NAME,
    stack_labels,
)
from infra.worker_groups import pod_labels

NETWORK_POLICIES_COMPONENT = "servestack:index:NetworkPolicies"
DNS_NAMESPACE = "kube-system"


def ray_pods(stack: StackConfig) -> dict[str, Any]:
    """Every head and worker pod of the stack's RayService (our own pod template labels)."""
    return {"matchLabels": dict(pod_labels(stack))}


def ray_head(stack: StackConfig) -> dict[str, Any]:
    return {"matchLabels": {**pod_labels(stack), RAY_NODE_TYPE_LABEL: RAY_HEAD_NODE_TYPE}}


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


def network_policy_manifests(stack: StackConfig) -> list[dict[str, Any]]:
    """The stack's NetworkPolicies, in a stable order; empty when the stack turns them off."""
    if not stack.security.network_policies:
        return []
    ray = ray_pods(stack)
    head = ray_head(stack)
    monitoring = _namespace(stack.observability.monitoring_namespace)
    return [
        _policy(stack, "default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]}),
        _policy(stack, "ray-cluster-internal", {
            "ingress": [{"from": [{"podSelector": ray}]}],
            "podSelector": ray,
            "policyTypes": ["Ingress"],
        }),
        _policy(stack, "ray-head-from-operator", {
            "ingress": [{"from": [{"podSelector": {"matchLabels": operator_pod_labels()}}],
                         "ports": _tcp(DASHBOARD_PORT_NAME)}],
            "podSelector": head,
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
                         "ports": _tcp(METRICS_PORT_NAME, *HEAD_METRICS_PORT_NAMES)}],
            "podSelector": ray,
            "policyTypes": ["Ingress"],
        }),
        _policy(stack, "operator-metrics-from-monitoring", {
            "ingress": [{"from": [monitoring], "ports": _tcp(OPERATOR_METRICS_PORT_NAME)}],
            "podSelector": {"matchLabels": operator_pod_labels()},
            "policyTypes": ["Ingress"],
        }),
        _policy(stack, "ray-egress", {"egress": _ray_egress(stack), "podSelector": ray,
                                      "policyTypes": ["Egress"]}),
        _policy(stack, "ray-head-egress-api-server", {
            "egress": [{"ports": _tcp(*stack.security.api_server_ports),
                        "to": [{"ipBlock": {"cidr": cidr}}
                               for cidr in stack.security.api_server_cidrs]}],
            "podSelector": head,
            "policyTypes": ["Egress"],
        }),
    ]


def _ray_egress(stack: StackConfig) -> list[dict[str, Any]]:
    dns = {**_namespace(DNS_NAMESPACE), "podSelector": {"matchLabels": dict(DNS_POD_LABELS)}}
    rules: list[dict[str, Any]] = [
        {"to": [{"podSelector": ray_pods(stack)}]},
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
         "to": [dns]},
    ]
    redis_port = stack.rayservice.gcs_fault_tolerance.redis_port
    if stack.rayservice.gcs_fault_tolerance.enabled and redis_port is not None:
        # The Redis host is a DNS name outside the cluster: allow its port, not its address.
        rules.append({"ports": _tcp(redis_port)})
    return rules


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    stack: StackConfig


class NetworkPolicies(pulumi.ComponentResource):
    """One NetworkPolicy per allowed path, all in the stack's namespace."""

    def __init__(self, name: str, args: NetworkPoliciesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NETWORK_POLICIES_COMPONENT, name, None, opts)
        names = []
        for manifest in network_policy_manifests(args.stack):
            policy_name = manifest["metadata"]["name"]
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions(parent=self),
            )
            names.append(policy_name)
        self.register_outputs({"policies": names})
