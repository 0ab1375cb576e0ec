"""Quantities are strings Kubernetes and KubeRay accept, exact or rounded up, never down; sizes
for people and stack files are written by one function each."""

from __future__ import annotations

import pytest
from pydantic import ByteSize, TypeAdapter

from infra.quantities import byte_size, cpu_quantity, gib, guaranteed_resources, memory_quantity


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


@pytest.mark.parametrize(("size", "expected"), [
    (3 * 1024**3, "3GiB"), (1536 * 1024**2, "1536MiB"), (1000, "1000"), (2 * 1024**4, "2TiB"),
])
def test_stack_file_sizes_are_exact_and_read_back(size: int, expected: str) -> None:
    assert byte_size(size) == expected
    assert TypeAdapter(ByteSize).validate_python(expected) == size


@pytest.mark.parametrize(("size", "expected"), [
    (1024**3, "1GiB"), (1536 * 1024**2, "1.5GiB"), (256 * 1024**2, "0.25GiB"),
    (int(3.92 * 1024**3), "3.92GiB"), (17 * 1024**3, "17GiB"),
])
def test_sizes_for_people_in_gib(size: int, expected: str) -> None:
    assert gib(size) == expected


def test_requests_equal_limits_and_devices_are_limits_only() -> None:
    resources = guaranteed_resources(2.5, 6 * 1024**3, devices={"nvidia.com/gpu": 1})
    assert resources == {
        "limits": {"cpu": "2500m", "memory": "6Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "2500m", "memory": "6Gi"},
    }
    assert guaranteed_resources(1, 1024**3) == {"limits": {"cpu": "1", "memory": "1Gi"},
                                                "requests": {"cpu": "1", "memory": "1Gi"}}
