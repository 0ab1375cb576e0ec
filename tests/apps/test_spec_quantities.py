"""Sizes and CPUs in a spec or stack read as Kubernetes writes them, and today's forms still do."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apps.quantity import BARE_MEMORY_FLOOR, QuantityError, memory_bytes
from apps.spec import Resources

GI = 2**30


@pytest.mark.parametrize(("written", "size"), [
    ("3Gi", 3 * GI), ("512Mi", 512 * 2**20), ("1.5Gi", GI + GI // 2), ("3G", 3 * 10**9),
    ("3e9", 3 * 10**9), ("3E9", 3 * 10**9), ("1Ti", 2**40), ("100Ki", 102400),
    ("30GiB", 30 * GI), ("1.5 GiB", GI + GI // 2), ("2gb", 2 * 10**9), (GI, GI),
    ("1073741824", GI), (1073741824.0, GI), (0, 0), ("1.1Gi", 1181116007),
])
def test_memory_in_kubernetes_and_byte_spellings(written: object, size: int) -> None:
    assert Resources(memory=written).memory == size


@pytest.mark.parametrize(("written", "hint"), [
    (3072, "did you mean 3072Mi"), ("3072", "did you mean 3072Mi"), ("3e3", "did you mean 3000Mi"),
    ("512m", "write 512Mi"),
])
def test_a_size_that_probably_lacks_its_unit_is_refused_with_the_unit_to_add(
    written: object, hint: str,
) -> None:
    with pytest.raises(ValidationError, match=hint):
        Resources(memory=written)


def test_the_floor_is_one_mebibyte() -> None:
    assert memory_bytes(BARE_MEMORY_FLOOR) == BARE_MEMORY_FLOOR
    with pytest.raises(QuantityError, match="no unit"):
        memory_bytes(BARE_MEMORY_FLOOR - 1)


@pytest.mark.parametrize(("written", "cpus"), [
    ("500m", 0.5), ("2", 2.0), (2, 2.0), (0.5, 0.5), ("1500m", 1.5), ("0.25", 0.25),
])
def test_cpus_in_kubernetes_spelling(written: object, cpus: float) -> None:
    assert Resources(num_cpus=written).num_cpus == cpus


@pytest.mark.parametrize("written", ["two", "1Gi CPU", "-1", "500 m"])
def test_what_is_not_a_cpu_count_is_refused(written: str) -> None:
    with pytest.raises(ValidationError):
        Resources(num_cpus=written)
