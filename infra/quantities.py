"""Kubernetes quantity strings from the plan's numbers.

The KubeRay CRD rejects floats such as `cpu: 0.5`, and a string also keeps Pulumi's diff stable
("1500m" stays "1500m"), so every request and limit is written through these functions.
"""

from __future__ import annotations

import math

_BINARY = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


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
