"""Sizes and CPUs as Kubernetes users write them, parsed by one function for every reader.

Kubernetes' quantity grammar (k8s.io/apimachinery resource.Quantity): a decimal number, then
a binary suffix (Ki Mi Gi Ti Pi Ei), a decimal one (m k M G T P E) or an exponent (e3, E-2).
Sizes also keep the byte spellings stacks used before (`30GiB`, `1.5 GB`, case-insensitive).
The stack schema, the app specs and the policy pack all read quantities through
`quantity_value`, so `plan` and `check` cannot disagree on what `3Gi` means.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, ByteSize

KUBERNETES_SUFFIXES: Final[dict[str, int | Decimal]] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "m": Decimal("0.001"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
BYTE_SUFFIXES: Final[dict[str, int]] = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15, "eb": 10**18,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50, "eib": 2**60,
}
"""The spellings pydantic's ByteSize reads (`30GiB`, `1.5 GB`), kept for existing stacks."""

BARE_MEMORY_FLOOR: Final = 2**20
"""A memory without a unit below 1Mi is almost surely MiB or GiB with the unit forgotten."""

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_KUBERNETES = re.compile(
    rf"^\+?(?P<number>{_NUMBER})(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[mkMGTPE])?)$"
)
_BYTES = re.compile(rf"^(?P<number>{_NUMBER})\s*(?P<suffix>[kmgtpe]i?b|b)$", re.IGNORECASE)


class QuantityError(ValueError):
    """Not a quantity; the message says which spellings are."""


def quantity_value(value: Any, byte_units: bool = True) -> Decimal:
    """A quantity in base units, exactly: "500m" → 0.5, "1Gi" → 1073741824, "1e3" → 1000,
    "30GiB" → 32212254720 (only with `byte_units`: the API server refuses it in a manifest).
    Numbers pass through; negatives and booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise QuantityError(f"{value!r} is not a quantity such as 500m, 2 or 3Gi")
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite() or number < 0:
            raise QuantityError(f"{value!r} is not a non-negative quantity")
        return number
    text = value.strip()
    if text.startswith("-"):
        raise QuantityError(f"{value!r}: a size or CPU count cannot be negative")
    try:
        if match := _KUBERNETES.match(text):
            number = Decimal(match["number"])
            if match["exponent"]:
                return number.scaleb(int(match["exponent"][1:]))
            return number * KUBERNETES_SUFFIXES[match["suffix"] or ""]
        if byte_units and (match := _BYTES.match(text)):
            return Decimal(match["number"]) * BYTE_SUFFIXES[match["suffix"].lower()]
    except InvalidOperation:
        pass
    raise QuantityError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 1.5Gi, "
                        "512Mi, 3G or 1e9")


def has_unit(value: Any) -> bool:
    """Whether a size names its unit (`3Gi`, `30GiB`, `3e9` counts as bare bytes)."""
    if not isinstance(value, str):
        return False
    match = _KUBERNETES.match(value.strip())
    return match is None or bool(match["suffix"])


def byte_count(value: Any, bare_floor: int = 0) -> int:
    """A size in whole bytes, rounded up as Kubernetes rounds a quantity's Value().

    Refused: `m` (milli-bytes in Kubernetes, though Docker reads `512m` as megabytes), and a
    bare number below `bare_floor`, each with the spelling that was probably meant.
    """
    if isinstance(value, str) and value.strip().endswith("m") and _KUBERNETES.match(value.strip()):
        number = value.strip()[:-1]
        raise QuantityError(f"{value!r} is {number} thousandths of a byte in Kubernetes; "
                            f"write {number}Mi (mebibytes) or {number}M (megabytes)")
    size = math.ceil(quantity_value(value))
    if 0 < size < bare_floor and not has_unit(value):
        raise QuantityError(f"{value!r} has no unit, so it reads as {size} bytes; add the unit: "
                            f"did you mean {size}Mi (or {size}Gi)?")
    return size


def memory_bytes(value: Any) -> int:
    """A memory size in bytes; a bare number below 1Mi is refused as a forgotten unit."""
    return byte_count(value, BARE_MEMORY_FLOOR)


def cpu_count(value: Any) -> float:
    """CPUs as a number: `2`, `0.5`, `"500m"`, `"1.5"`."""
    if isinstance(value, str) and not _KUBERNETES.match(value.strip()):
        raise QuantityError(f"{value!r} is not a CPU quantity such as 2, 0.5 or 500m")
    return float(quantity_value(value))


def _memory(value: Any) -> Any:
    return value if isinstance(value, ByteSize) else ByteSize(memory_bytes(value))


def _size(value: Any) -> Any:
    return value if isinstance(value, ByteSize) else ByteSize(byte_count(value))


def _cpus(value: Any) -> Any:
    return cpu_count(value) if isinstance(value, str) else value


Size = Annotated[ByteSize, BeforeValidator(_size)]
"""A size in bytes (a body or file limit): `1Mi`, `8MiB`, `1e6` or plain bytes."""
Memory = Annotated[ByteSize, BeforeValidator(_memory)]
"""A memory size: `3Gi`, `512Mi`, `1.5Gi`, `3G`, `3e9`, `30GiB` or bytes (at least 1Mi)."""
CpuCount = Annotated[float, BeforeValidator(_cpus)]
"""CPUs: `2`, `0.5` or `500m`."""
