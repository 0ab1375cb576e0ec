"""The stack's `gateway`: a Gateway API front door for Serve, with TLS.

The routes are not declared here: one HTTPRoute rule per app route prefix is derived from the
typed apps (infra/gateway.py). The gateway class depends on the cluster backend (GKE's own
classes, or any class named on the other backends), which `ClusterSpec.gateway_problems`
checks.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from apps.spec import SpecModel
from infra.field_types import DNS_LABEL, Cidr, LabelMap

HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Gateway API listener hostname: a DNS name, optionally with one leading wildcard label."""
PORTS = {"HTTP": 80, "HTTPS": 443}


class CertManagerTls(SpecModel):
    """A cert-manager Certificate servestack creates for the listener's hostname."""

    issuer: str = Field(pattern=DNS_LABEL, description="Name of the cert-manager issuer.")
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = Field(
        "ClusterIssuer", description="An Issuer lives in the stack's namespace; a "
        "ClusterIssuer anywhere.",
    )


class ListenerTls(SpecModel):
    """Where the listener's certificate comes from: an existing Secret, or cert-manager."""

    secret: str | None = Field(
        None, pattern=DNS_LABEL, description="An existing kubernetes.io/tls Secret.",
    )
    secret_namespace: str | None = Field(
        None, pattern=DNS_LABEL, description="Its namespace when not the stack's (servestack "
        "then adds the ReferenceGrant that lets the Gateway read it).",
    )
    cert_manager: CertManagerTls | None = Field(
        None, description="Or: a Certificate from this issuer, kept in a Secret servestack names.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.secret is None) == (self.cert_manager is None):
            raise ValueError("give exactly one of secret (an existing Secret) or cert_manager "
                             "(a Certificate servestack requests)")
        if self.secret_namespace is not None and self.secret is None:
            raise ValueError("secret_namespace names where `secret` lives; set secret too")
        return self


class Listener(SpecModel):
    """One port of the Gateway; HTTPS terminates TLS there."""

    name: str = Field(pattern=DNS_LABEL, description="Listener name, unique in the Gateway.")
    protocol: Literal["HTTP", "HTTPS"] = Field("HTTPS", description="HTTPS terminates TLS.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Port the Gateway listens on; default 443 (HTTPS) "
        "or 80 (HTTP).",
    )
    hostname: str | None = Field(
        None, pattern=HOSTNAME, max_length=253,
        description="Host the listener answers for, e.g. api.example.com; none: any host.",
    )
    tls: ListenerTls | None = Field(None, description="The certificate of an HTTPS listener.")

    @model_validator(mode="after")
    def _tls_matches_protocol(self) -> Self:
        if self.protocol == "HTTPS" and self.tls is None:
            raise ValueError("an HTTPS listener needs tls: {secret: ...} or "
                             "tls: {cert_manager: {issuer: ...}}")
        if self.protocol == "HTTP" and self.tls is not None:
            raise ValueError("an HTTP listener carries no certificate; use protocol: HTTPS")
        if self.tls is not None and self.tls.cert_manager is not None and not self.hostname:
            raise ValueError("a cert-manager Certificate is issued for a hostname; set hostname")
        return self

    @property
    def listening_port(self) -> int:
        return self.port if self.port is not None else PORTS[self.protocol]


class DataPlane(SpecModel):
    """Where the gateway's proxies run: the only sources the NetworkPolicies admit to Serve.

    In-cluster proxies (Envoy Gateway, Istio, NGINX) by namespace and pod labels; a managed
    load balancer (GKE's gateway classes) by its source address ranges.
    """

    namespace: str | None = Field(
        None, pattern=DNS_LABEL, description="Namespace of in-cluster gateway proxies.",
    )
    pod_labels: LabelMap = Field(
        default_factory=dict, description="Labels of those proxy pods.",
    )
    cidrs: tuple[Cidr, ...] = Field(
        (), description="Source ranges of a managed load balancer's proxies (GKE: "
        "35.191.0.0/16 and 130.211.0.0/22, plus the proxy-only subnet of regional classes).",
    )

    @model_validator(mode="after")
    def _selective(self) -> Self:
        in_cluster = self.namespace is not None and bool(self.pod_labels)
        if not in_cluster and not self.cidrs:
            raise ValueError("name the proxies: namespace and pod_labels (in-cluster), or "
                             "cidrs (a managed load balancer)")
        if (self.namespace is None) != (not self.pod_labels):
            raise ValueError("namespace and pod_labels go together: both must match a proxy")
        return self


class GatewayConfig(SpecModel):
    """The Gateway API front door: one Gateway, one HTTPRoute derived from the apps."""

    enabled: bool = Field(False, description="Create the Gateway and its HTTPRoute.")
    name: str = Field(
        "servestack", pattern=DNS_LABEL, description="Name of the Gateway and the HTTPRoute.",
    )
    class_name: str | None = Field(
        None, pattern=DNS_LABEL, description="GatewayClass; default on GKE "
        "gke-l7-global-external-managed, required elsewhere.",
    )
    controller_name: str | None = Field(
        None, description="When set, servestack creates the GatewayClass class_name for "
        "this controller (e.g. gateway.envoyproxy.io/gatewayclass-controller); else the "
        "class must exist.",
    )
    internet_facing: bool = Field(
        True, description="Whether the Gateway's address is public (GKE knows it from the "
        "class); every listener of a public Gateway must be HTTPS.",
    )
    listeners: tuple[Listener, ...] = Field((), description="The Gateway's listeners.")
    data_plane: DataPlane | None = Field(
        None, description="The gateway's proxies, the only peers the NetworkPolicies let "
        "reach Serve's port from outside the Ray cluster.",
    )

    @model_validator(mode="after")
    def _listeners(self) -> Self:
        if not self.enabled:
            return self
        if not self.listeners:
            raise ValueError("an enabled gateway needs listeners, e.g. "
                             "[{name: https, hostname: api.example.com, tls: {secret: api-tls}}]")
        names = [listener.name for listener in self.listeners]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"listener names must be unique; repeated: {dupes}")
        return self
