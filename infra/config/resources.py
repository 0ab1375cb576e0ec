"""What a pod the stack runs beside the replicas reserves (operator, head, sidecars)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from apps.quantity import CpuCount, Memory
from apps.spec import SpecModel


class PodResources(SpecModel):
    cpu: CpuCount = Field(gt=0, description="CPUs (requests = limits), e.g. 0.5 or 500m.")
    memory: Memory = Field(description="Memory (requests = limits), e.g. 4Gi.")


class KeepsPodDefaults(SpecModel):
    """A model whose PodResources fields may be given in part: `head: {memory: 8Gi}` keeps
    the default CPU, as every other key a stack leaves out keeps its default."""

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given = data.get(name)
            if isinstance(given, dict) and isinstance(field.default, PodResources):
                merged[name] = {**field.default.model_dump(), **given}
        return merged
