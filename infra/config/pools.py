"""The stack's `pools`: groups of identical nodes, what each node offers pods and Ray."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from apps import kubernetes_rules as k8s
from apps.quantity import CpuCount, Memory
from apps.spec import SpecModel
from infra.config.cost import PoolPrice
from infra.field_paths import pool_path
from infra.field_types import DnsLabel, LabelMap, kubernetes_rule
from infra.names import NO_SCHEDULE, TaintEffect


class Taint(SpecModel):
    key: Annotated[str, kubernetes_rule(k8s.taint_key)] = Field(
        description="Taint key, e.g. nvidia.com/gpu.")
    value: Annotated[str, kubernetes_rule(k8s.taint_value)] = Field(
        "", description="Taint value.")
    effect: TaintEffect = Field(
        NO_SCHEDULE, description="What the node does to pods that do not tolerate the taint."
    )


class Accelerator(SpecModel):
    """The GPUs on each node of a pool, as Kubernetes and Ray see them."""

    resource: Annotated[str, kubernetes_rule(k8s.extended_resource_name)] = Field(
        "nvidia.com/gpu", description="Extended resource name, or a MIG profile.")
    count: int = Field(
        1, ge=1, description="Devices of `resource` per node (MIG: slices per node)."
    )
    cloud_type: str | None = Field(None, description="GKE accelerator type, e.g. nvidia-l4.")
    ray_type: str | None = Field(None, description="Ray accelerator_type, e.g. L4 or A100.")

    @property
    def label(self) -> str:
        """How plans and diffs name these devices: the resource, with its model when given,
        so MIG slices and whole GPUs (or L4s and A100s) are never added up together."""
        model = self.ray_type or self.cloud_type
        return f"{self.resource} ({model})" if model else self.resource


class NodePool(SpecModel):
    """One group of identical nodes; allocatable is what pods may use after system reserve."""

    name: DnsLabel = Field(
        description="Pool name (DNS label); also the cloud node pool/group name suffix.",
    )
    machine_type: str | None = Field(None, description="Cloud machine/instance type (gke, eks).")
    cpu: CpuCount = Field(gt=0, description="Allocatable CPUs per node, e.g. 15.8 or 7900m.")
    memory: Memory = Field(description="Allocatable memory per node, e.g. 30Gi.")
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
    price: PoolPrice | None = Field(
        None, description="This pool's own price per node-hour (e.g. a committed-use rate); "
        "default: the list price of machine_type in infra/prices.csv. See docs/cost.md.",
    )

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"min_nodes ({self.min_nodes}) > max_nodes ({self.max_nodes}); "
                "raise max_nodes or lower min_nodes"
            )
        return self

    def price_problems(self) -> list[tuple[str, str]]:
        """A pool's own price must cover the capacity it buys (spot or on-demand)."""
        if self.price is None or self.price.for_capacity(self.spot) is not None:
            return []
        field, kind = ("spot_per_hour", "spot") if self.spot else ("on_demand_per_hour",
                                                                   "on-demand")
        return [(self.path(f"price.{field}"),
                 f"the pool is {kind}: give its {kind} price per node-hour")]

    @property
    def gpus(self) -> int:
        return self.accelerator.count if self.accelerator else 0

    def path(self, field: str) -> str:
        """A field of this pool as errors name it: by pool name, which survives reordering."""
        return pool_path(self.name, field)
