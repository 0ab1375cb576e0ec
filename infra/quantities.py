"""Quantities written one way: Kubernetes quantity strings, pod resources, sizes for people.

The KubeRay CRD rejects floats such as `cpu: 0.5`, and a string also keeps Pulumi's diff stable
("1500m" stays "1500m"), so every request and limit is written through these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_GIB = 2**30
_BINARY = (("Ti", 2**40), ("Gi", _GIB), ("Mi", 2**20), ("Ki", 2**10))


def cpu_quantity(cpus: float) -> str:
    """Whole CPUs as "2", fractions in millicores ("1500m"), rounded up to the next millicore."""
    if cpus < 0:
        raise ValueError(f"a CPU quantity cannot be negative: {cpus}")
    millicores = math.ceil(round(cpus * 10_000) / 10)
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def memory_quantity(size: int) -> str:
    """Bytes in the largest binary unit that represents them exactly ("3Gi", "1536Mi")."""
    if size < 0:
        raise ValueError(f"a memory quantity cannot be negative: {size}")
    for suffix, factor in _BINARY:
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def byte_size(size: int) -> str:
    """Exact, as a stack file spells sizes ("3GiB", "1536MiB", "1000"): pydantic's ByteSize
    refuses the Kubernetes spelling "3Gi", so a documented default must carry the B."""
    quantity = memory_quantity(size)
    return f"{quantity}B" if quantity.endswith("i") else quantity


def gib(size: float) -> str:
    """Bytes as GiB to three significant digits ("1.5GiB", "0.25GiB"): for messages and
    tables, where a reader compares sizes rather than copies them."""
    return f"{size / _GIB:.3g}GiB"


def guaranteed_resources(cpu: float, memory: int,
                         devices: Mapping[str, int] | None = None) -> dict[str, dict[str, str]]:
    """A container's `resources` with requests equal to limits (Guaranteed QoS: the scheduler
    reserves what the capacity plan packed); devices such as GPUs only as limits, as
    Kubernetes requires for extended resources."""
    requests = {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}
    devices = devices or {}
    limits = {**requests, **{name: str(count) for name, count in devices.items()}}
    return {"limits": limits, "requests": dict(requests)}
