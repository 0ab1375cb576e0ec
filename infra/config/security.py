"""The stack's `security`: who may reach the Ray cluster, and how Ray authenticates."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from apps.spec import SpecModel
from infra.field_types import Cidr, LabelMap, Port
from infra.names import SERVE_CLIENT_LABEL


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
    api_server_cidrs: tuple[Cidr, ...] = Field(
        (), description="Where the Kubernetes API server is, for the head's autoscaler egress; "
        "empty: what the backend knows (required on `existing`).",
    )
    api_server_ports: tuple[Port, ...] = Field(
        (443, 6443), min_length=1, description="API server ports the head's autoscaler may reach."
    )

    @field_validator("api_server_ports")
    @classmethod
    def _ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(value)))

