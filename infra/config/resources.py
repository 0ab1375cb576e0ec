"""What a pod the stack runs beside the replicas reserves (operator, head, sidecars)."""

from __future__ import annotations

from pydantic import Field

from apps.quantity import CpuCount, Memory
from apps.spec import SpecModel


class PodResources(SpecModel):
    cpu: CpuCount = Field(gt=0, description="CPUs (requests = limits), e.g. 0.5 or 500m.")
    memory: Memory = Field(description="Memory (requests = limits), e.g. 4Gi.")
