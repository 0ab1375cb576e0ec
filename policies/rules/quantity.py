"""Kubernetes resource quantities ("1500m", "3Gi", "1") as numbers, so limits can be compared."""

from __future__ import annotations

import re
from typing import Any

_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|[kMGTPE]i?|)$")


class QuantityError(ValueError):
    pass


def parse_quantity(value: Any) -> float:
    """A quantity in base units: "500m" → 0.5, "1Gi" → 1073741824. Numbers pass through."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity such as 500m, 2 or 3Gi")
    number, suffix = float(match.group(1)), match.group(2)
    if suffix == "m":
        return number / 1000
    return number * _SUFFIXES[suffix]


def quantity_or_none(value: Any) -> float | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None
