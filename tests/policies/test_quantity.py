"""Kubernetes quantities as numbers, over the forms resource.Quantity documents."""

from __future__ import annotations

import pytest

from policies.rules.quantity import QuantityError, parse_quantity

DOCUMENTED = [
    # binarySI
    ("1Ki", 2**10), ("1Mi", 2**20), ("3Gi", 3 * 2**30), ("2Ti", 2 * 2**40), ("1Pi", 2**50),
    ("1Ei", 2**60), ("1.5Gi", 1.5 * 2**30), ("512Mi", 512 * 2**20), ("100Ki", 102400),
    # decimalSI
    ("1500m", 1.5), ("500m", 0.5), ("2", 2.0), ("1k", 1000.0), ("3M", 3e6), ("3G", 3e9),
    ("1T", 1e12), ("1P", 1e15), ("1E", 1e18), ("1073741824", 2**30),
    # decimalExponent
    ("1e3", 1000.0), ("1E3", 1000.0), ("3e9", 3e9), ("12e-3", 0.012), ("1e+2", 100.0),
    # number forms: digits, digits., .digits, leading +
    (".5", 0.5), ("5.", 5.0), ("+2", 2.0), ("0", 0.0),
    # numbers already parsed (the wire form)
    (0.5, 0.5), (2, 2.0),
]


@pytest.mark.parametrize(("value", "expected"), DOCUMENTED)
def test_documented_quantities_parse_to_base_units(value: str | float, expected: float) -> None:
    assert parse_quantity(value) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("value", ["", "1.5 cpu", "Gi", True, "-1", "1K", "1ki", "1gi", "1Gib",
                                   "30GiB", "1e", "1.2.3", "e3", " "])
def test_garbage_is_not_a_quantity(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)
