"""The front door: a Gateway API Gateway, its HTTPRoute and what TLS needs.

The manifests are pure functions so tests (against the vendored Gateway API CRDs), `render`
and the policies read what Pulumi applies. The HTTPRoute has one rule per app route prefix,
taken from the typed apps, pointing at the Serve Service KubeRay keeps on the active cluster.
Under NewClusterWithIncrementalUpgrade KubeRay creates its own Gateway and HTTPRoute
(`<rayservice>-gateway`, `-httproute`) of the same class to split traffic between the two
clusters; this Gateway is named apart from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import Listener, StackConfig
from infra.names import GATEWAY_API, GATEWAY_API_VERSION, serve_service_name, stack_labels

GATEWAY_COMPONENT = "servestack:index:Gateway"
REFERENCE_GRANT_VERSION = f"{GATEWAY_API}/v1beta1"
CERT_MANAGER_VERSION = "cert-manager.io/v1"


def _metadata(stack: StackConfig, name: str, namespace: str | None = None) -> dict[str, Any]:
    return {"labels": stack_labels(stack.stack), "name": name,
            "namespace": namespace or stack.namespace}


def tls_secret_name(stack: StackConfig, listener: Listener) -> str:
    """The Secret a listener's certificate is in: the stack's, or the one cert-manager fills."""
    assert listener.tls is not None
    return listener.tls.secret or f"{stack.gateway.name}-{listener.name}-tls"


def _listener(stack: StackConfig, listener: Listener) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "allowedRoutes": {"namespaces": {"from": "Same"}},
        "name": listener.name, "port": listener.listening_port, "protocol": listener.protocol,
    }
    if listener.hostname:
        entry["hostname"] = listener.hostname
    if listener.tls is not None:
        ref: dict[str, Any] = {"group": "", "kind": "Secret",
                               "name": tls_secret_name(stack, listener)}
        if listener.tls.secret_namespace:
            ref["namespace"] = listener.tls.secret_namespace
        entry["tls"] = {"certificateRefs": [ref], "mode": "Terminate"}
    return entry


def gateway_class_manifest(stack: StackConfig) -> dict[str, Any] | None:
    """A GatewayClass for the controller the stack names; None: the class exists."""
    gateway = stack.gateway
    if not gateway.enabled or gateway.controller_name is None:
        return None
    metadata = _metadata(stack, str(stack.gateway_class))
    del metadata["namespace"]  # cluster-scoped
    return {"apiVersion": GATEWAY_API_VERSION, "kind": "GatewayClass", "metadata": metadata,
            "spec": {"controllerName": gateway.controller_name}}


def gateway_manifest(stack: StackConfig) -> dict[str, Any]:
    return {
        "apiVersion": GATEWAY_API_VERSION, "kind": "Gateway",
        "metadata": _metadata(stack, stack.gateway.name),
        "spec": {"gatewayClassName": stack.gateway_class,
                 "listeners": [_listener(stack, item) for item in stack.gateway.listeners]},
    }


def http_route_manifest(stack: StackConfig) -> dict[str, Any]:
    """One rule per app route prefix, longest first (Gateway API orders matches by length
    anyway; sorted so the manifest is stable)."""
    prefixes = sorted({app.route_prefix for app in stack.applications},
                      key=lambda prefix: (-len(prefix), prefix))
    backend = {"group": "", "kind": "Service", "name": serve_service_name(stack.rayservice.name),
               "port": stack.serve.http.port, "weight": 1}
    spec: dict[str, Any] = {
        "parentRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": stack.gateway.name}],
        "rules": [{"backendRefs": [dict(backend)],
                   "matches": [{"path": {"type": "PathPrefix", "value": prefix}}]}
                  for prefix in prefixes],
    }
    hostnames = sorted({item.hostname for item in stack.gateway.listeners if item.hostname})
    if hostnames and all(item.hostname for item in stack.gateway.listeners):
        spec["hostnames"] = hostnames
    return {"apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute",
            "metadata": _metadata(stack, stack.gateway.name), "spec": spec}


def reference_grant_manifests(stack: StackConfig) -> list[dict[str, Any]]:
    """Where a listener reads a Secret of another namespace, that namespace must allow it."""
    secrets: dict[str, set[str]] = {}
    for listener in stack.gateway.listeners:
        if listener.tls is not None and listener.tls.secret_namespace:
            secrets.setdefault(listener.tls.secret_namespace, set()).add(
                tls_secret_name(stack, listener))
    return [{
        "apiVersion": REFERENCE_GRANT_VERSION, "kind": "ReferenceGrant",
        "metadata": _metadata(stack, f"{stack.gateway.name}-{stack.namespace}-tls", namespace),
        "spec": {"from": [{"group": GATEWAY_API, "kind": "Gateway",
                           "namespace": stack.namespace}],
                 "to": [{"group": "", "kind": "Secret", "name": name} for name in sorted(names)]},
    } for namespace, names in sorted(secrets.items())]


def certificate_manifests(stack: StackConfig) -> list[dict[str, Any]]:
    found = []
    for listener in stack.gateway.listeners:
        if listener.tls is None or listener.tls.cert_manager is None:
            continue
        issuer = listener.tls.cert_manager
        secret = tls_secret_name(stack, listener)
        found.append({
            "apiVersion": CERT_MANAGER_VERSION, "kind": "Certificate",
            "metadata": _metadata(stack, secret),
            "spec": {"dnsNames": [listener.hostname],
                     "issuerRef": {"group": "cert-manager.io", "kind": issuer.issuer_kind,
                                   "name": issuer.issuer},
                     "secretName": secret},
        })
    return found


def front_door_manifests(stack: StackConfig) -> list[dict[str, Any]]:
    """Every object of the front door, in apply order; empty without `gateway.enabled`."""
    if not stack.gateway.enabled:
        return []
    gateway_class = gateway_class_manifest(stack)
    return [*([gateway_class] if gateway_class else []), *certificate_manifests(stack),
            *reference_grant_manifests(stack), gateway_manifest(stack),
            http_route_manifest(stack)]


@dataclass(frozen=True)
class GatewayArgs:
    stack: StackConfig


class FrontDoor(pulumi.ComponentResource):
    """The Gateway, its HTTPRoute, and the GatewayClass/Certificates/ReferenceGrants it needs."""

    def __init__(self, name: str, args: GatewayArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(GATEWAY_COMPONENT, name, None, opts)
        created: list[pulumi.Resource] = []
        for manifest in front_door_manifests(args.stack):
            kind, object_name = manifest["kind"], manifest["metadata"]["name"]
            created.append(k8s.apiextensions.CustomResource(
                f"{name}-{kind.lower()}-{object_name}",
                api_version=manifest["apiVersion"], kind=kind,
                metadata=manifest["metadata"], spec=manifest["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(created)),
            ))
        self.register_outputs({"objects": [f"{m['kind']}/{m['metadata']['name']}"
                                           for m in front_door_manifests(args.stack)]})
