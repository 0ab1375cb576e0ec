"""What a pod the stack runs beside the replicas reserves (operator, head, sidecars)."""

from __future__ import annotations

from pydantic import ByteSize, Field

from apps.spec import SpecModel


class PodResources(SpecModel):
    cpu: float = Field(gt=0, description="CPUs (requests = limits).")
    memory: ByteSize = Field(description="Memory (requests = limits), e.g. 4GiB.")
