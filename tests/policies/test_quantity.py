"""Kubernetes quantities as numbers."""

from __future__ import annotations

import pytest

from policies.rules.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1500m", 1.5), ("2", 2.0), (0.5, 0.5), ("3Gi", 3 * 2**30), ("512Mi", 512 * 2**20),
     ("1k", 1000.0), ("1073741824", 2**30.0), (".5", 0.5)],
)
def test_quantities_parse_to_base_units(value: str | float, expected: float) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["", "1.5 cpu", "Gi", True, "-1"])
def test_garbage_is_not_a_quantity(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)
