"""Incremental upgrade steps sized by the capacity plan, checked and refused with it."""

from __future__ import annotations

import pytest

from infra.config import StackConfigError
from infra.rayservice import rayservice_manifest
from infra.stack_file import load_stack, source_from_stack_file, stack_file
from infra.upgrade_plan import largest_fitting_surge, upgrade_plan
from infra.validation import StackSource, validate_stack
from tests.infra.kuberay_crd import validate_rayservice


def _with(stack: str, **rayservice: object) -> StackSource:
    source = source_from_stack_file(stack_file(stack))
    values = dict(source.values)
    values["rayservice"] = {**values["rayservice"], **rayservice}
    return StackSource(source.name, values, source.secret_keys)


def test_prod_steps_are_the_largest_surge_its_pools_hold() -> None:
    valid = load_stack("prod")
    upgrade = upgrade_plan(valid.stack, valid.plan)
    assert upgrade.max_surge_percent == largest_fitting_surge(valid.stack, valid.plan) == 50
    assert all(p.peak_nodes <= p.max_nodes for p in upgrade.pools)
    assert [s.new_capacity for s in upgrade.steps] == [50, 100]
    assert upgrade.peak_extra_gpus >= 1


def test_the_rayservice_carries_derived_options_and_passes_the_kuberay_crd() -> None:
    valid = load_stack("prod")
    manifest = rayservice_manifest(valid.stack, valid.plan, valid.serve_config)
    options = manifest["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]
    assert options["gatewayClassName"] == "gke-l7-global-external-managed"
    assert options["intervalSeconds"] == 40  # health check 10 s + timeout 30 s
    assert manifest["metadata"]["annotations"]["ray.io/initializing-timeout"] == "1800s"
    assert manifest["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    validate_rayservice(manifest)


def test_a_written_surge_larger_than_the_pools_hold_is_refused() -> None:
    with pytest.raises(StackConfigError) as error:
        validate_stack(_with("prod", upgrade={"max_surge_percent": 100}))
    assert any(path == "rayservice.upgrade.max_surge_percent" for path, _ in error.value.problems)


def test_pools_without_room_for_one_step_are_refused_naming_the_pool() -> None:
    source = source_from_stack_file(stack_file("prod"))
    pools = [dict(p) for p in source.values["pools"]]
    gpu = next(p for p in pools if p["name"] == "gpu-l4")
    gpu["max_nodes"] = 4  # exactly the worst case: no headroom at all
    values = {**source.values, "pools": pools}
    with pytest.raises(StackConfigError) as error:
        validate_stack(StackSource(source.name, values, source.secret_keys))
    found = dict(error.value.problems)
    assert "needs 5 nodes" in found["pools[gpu-l4].max_nodes"]
