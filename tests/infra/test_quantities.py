"""Quantities are strings Kubernetes and KubeRay accept, exact or rounded up, never down; sizes
for people and stack files are written by one function each."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from apps.quantity import CpuCount, Size
from infra.quantities import (
    cpu_quantity,
    gib,
    guaranteed_resources,
    memory_quantity,
    readable_cpu,
    readable_memory,
)


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


@pytest.mark.parametrize("size", [3 * 1024**3, 1536 * 1024**2, 1000, 2 * 1024**4, 100 * 1024])
def test_written_sizes_read_back_as_a_stack_file_gives_them(size: int) -> None:
    assert TypeAdapter(Size).validate_python(memory_quantity(size)) == size


@pytest.mark.parametrize("cpus", [3.0, 2.25, 0.5, 0.001, 15.8])
def test_written_cpus_read_back(cpus: float) -> None:
    assert TypeAdapter(CpuCount).validate_python(cpu_quantity(cpus)) == cpus
    assert TypeAdapter(CpuCount).validate_python(readable_cpu(cpus)) == cpus


@pytest.mark.parametrize(("size", "expected"), [
    (3 * 1024**3, "3Gi"), (1536 * 1024**2, "1.5Gi"), (512 * 1024**2, "512Mi"),
    (int(58.6 * 1024**3), "58.6Gi"), (1000 * 1024**2, "1000Mi"), (1000, "1000"),
])
def test_table_sizes_in_the_units_people_write(size: int, expected: str) -> None:
    assert readable_memory(size) == expected


@pytest.mark.parametrize(("cpus", "expected"), [(2, "2"), (0.5, "500m"), (15.8, "15.8"),
                                                (0, "0")])
def test_table_cpus_in_the_units_people_write(cpus: float, expected: str) -> None:
    assert readable_cpu(cpus) == expected


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
