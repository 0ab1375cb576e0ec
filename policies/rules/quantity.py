"""Kubernetes resource quantities ("1500m", "3Ki", "1e3") as numbers, so limits can be compared.

The parser the stack schema uses (apps.quantity), so the pack reads every form `plan` writes;
only the byte spellings (`30GiB`), which the API server refuses in a manifest, are not read.
"""

from __future__ import annotations

from typing import Any

from apps.quantity import QuantityError, quantity_value

__all__ = ["QuantityError", "parse_quantity", "quantity_or_none"]


def parse_quantity(value: Any) -> float:
    """A quantity in base units: "500m" → 0.5, "1Gi" → 1073741824. Numbers pass through."""
    return float(quantity_value(value, byte_units=False))


def quantity_or_none(value: Any) -> float | None:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None
