"""Quantities are strings Kubernetes and KubeRay accept, exact or rounded up, never down."""

from __future__ import annotations

import pytest

from infra.quantities import cpu_quantity, memory_quantity


@pytest.mark.parametrize(("cpus", "expected"), [
    (3.0, "3"), (2.25, "2250m"), (0.5, "500m"), (0.0001, "1m"), (1.0005, "1001m"), (0, "0"),
])
def test_cpu_in_whole_cpus_or_millicores(cpus: float, expected: str) -> None:
    assert cpu_quantity(cpus) == expected


@pytest.mark.parametrize(("size", "expected"), [
    (3 * 1024**3, "3Gi"), (1536 * 1024**2, "1536Mi"), (1000, "1000"), (2048, "2Ki"), (0, "0"),
    (2 * 1024**4, "2Ti"),
])
def test_memory_in_the_largest_exact_binary_unit(size: int, expected: str) -> None:
    assert memory_quantity(size) == expected


def test_negative_quantities_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        cpu_quantity(-1)
    with pytest.raises(ValueError, match="negative"):
        memory_quantity(-1)
