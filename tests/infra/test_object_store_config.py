"""`rayservice.object_store_memory`: half the overhead by default, and never all of it."""

from __future__ import annotations

from typing import Any

import pytest

from infra.capacity import plan_capacity
from infra.config import STACKS_DIR, StackConfigError, parse_stack_config
from infra.stack_file import read_stack_file


def _local(**rayservice: Any) -> dict[str, Any]:
    raw = read_stack_file(STACKS_DIR / "Pulumi.local.yaml")
    raw["rayservice"] = {**raw.get("rayservice", {}), **rayservice}
    return raw


def test_the_default_store_is_half_the_overhead_and_the_plan_counts_it() -> None:
    bigger = parse_stack_config("local", _local(worker_overhead={"cpu": 0.5, "memory": "2GiB"}),
                                backend_rules=False)
    assert bigger.rayservice.object_store_bytes == 1024**3
    stack = parse_stack_config("local", _local())
    half = int(stack.rayservice.worker_overhead.memory) // 2
    assert {g.object_store_memory for g in plan_capacity(stack).worker_groups} == {half}


@pytest.mark.parametrize(("rayservice", "said"), [
    ({"object_store_memory": "1GiB"}, "leaves nothing of rayservice.worker_overhead.memory"),
    ({"object_store_memory": "10MiB"}, "below the 0.0732GiB Ray needs"),
    ({"worker_overhead": {"cpu": 0.5, "memory": "100MiB"}},
     "(half of rayservice.worker_overhead.memory)"),
])
def test_a_store_the_pod_cannot_hold_is_refused_naming_both_fields(
    rayservice: dict[str, Any], said: str,
) -> None:
    with pytest.raises(StackConfigError) as refused:
        parse_stack_config("local", _local(**rayservice))
    paths = dict(refused.value.problems)
    assert said in paths["rayservice.object_store_memory"]
