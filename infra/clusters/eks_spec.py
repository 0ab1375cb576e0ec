"""EKS, without its SDK: the `cluster` schema (VPC, autoscaler), pool rules and fakes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Self

from pydantic import Field, model_validator

from apps.spec import SpecError, SpecModel
from infra.clusters.spec import (
    BACKEND_DESCRIPTION,
    CLUSTER_NAME_DESCRIPTION,
    FAKE_KUBECONFIG,
    ClusterSpec,
)
from infra.field_types import DNS_LABEL, Cidr

if TYPE_CHECKING:
    from infra.config.pools import NodePool

CLUSTER_AUTOSCALER_IMAGE_TAGS: Final = {"1.33": "v1.33.6", "1.34": "v1.34.5", "1.35": "v1.35.2"}
"""Cluster Autoscaler release per Kubernetes minor (its README: the minors must match)."""
MAX_VPC_ZONES: Final = 4
FAKE_VPC_CIDR: Final = "10.0.0.0/16"
FAKE_ACCOUNT: Final = "123456789012"
NODE_GROUP_LABEL: Final = "eks.amazonaws.com/nodegroup"
"""Set by EKS on every node of a managed node group, valued with the group's name."""


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


class EksCluster(ClusterSpec):
    listing_order: ClassVar[int] = 20
    extra: ClassVar[str | None] = "eks"
    node_pool_label: ClassVar[str | None] = NODE_GROUP_LABEL
    object_store_identity: ClassVar[Mapping[str, str]] = {"s3": "Pod Identity"}

    backend: Literal["eks"] = Field(description=BACKEND_DESCRIPTION)
    region: str = Field(description="AWS region.")
    name: str = Field("servestack", pattern=DNS_LABEL, description=CLUSTER_NAME_DESCRIPTION)
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

    @property
    def price_region(self) -> str:
        return self.region

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

    @classmethod
    def fake_outputs(cls, typ: str, name: str, state: dict[str, Any]) -> dict[str, Any] | None:
        if typ == "eks:index:Cluster":
            return {**state, "kubeconfigJson": FAKE_KUBECONFIG,
                    "kubeconfig": json.loads(FAKE_KUBECONFIG)}
        if typ == "aws:iam/role:Role":
            return {"name": name, **state, "arn": f"arn:aws:iam::{FAKE_ACCOUNT}:role/{name}"}
        return None

    @classmethod
    def fake_call(cls, token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        if token == "aws:ec2/getVpc:getVpc":
            return {"id": args.get("id"), "cidrBlock": FAKE_VPC_CIDR}
        return None


SPEC = EksCluster
