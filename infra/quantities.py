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


def readable_memory(size: float) -> str:
    """Bytes as a person writes them, in the largest binary unit that keeps the number at
    least 1, to three significant digits ("3Gi", "1.5Gi", "512Mi", "58.6Gi"): for tables."""
    for suffix, factor in _BINARY:
        if size >= factor:
            value = size / factor
            return f"{value:.3g}{suffix}" if value < 1000 else f"{value:.0f}{suffix}"
    return f"{size:g}"


def readable_cpu(cpus: float) -> str:
    """CPUs as a person writes them: whole or decimal ("2", "15.8"), below one in millicores
    ("500m")."""
    return cpu_quantity(cpus) if 0 < cpus < 1 else f"{cpus:g}"


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
