"""Incremental upgrade steps sized by the capacity plan, checked and refused with it."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from infra.config import StackConfig, StackConfigError, parse_stack_config
from infra.cost import estimate_cost
from infra.rayservice import rayservice_manifest
from infra.stack_file import load_stack, read_stack_file, source_from_stack_file, stack_file
from infra.upgrade_plan import (
    POD_START_S,
    UpgradePlan,
    cluster_deletion_delay_s,
    largest_fitting_surge,
    step_peaks,
    upgrade_plan,
)
from infra.validation import StackSource, validate_stack
from servestack.cli import app
from servestack.upgrade_summary import pool_rows, step_rows, upgrade_lines
from tests.infra.kuberay_crd import validate_rayservice


def _with(stack: str, **rayservice: object) -> StackSource:
    source = source_from_stack_file(stack_file(stack))
    values = dict(source.values)
    values["rayservice"] = {**values["rayservice"], **rayservice}
    return StackSource(source.name, values, source.secret_keys)


def test_prod_steps_are_the_largest_surge_its_pools_hold() -> None:
    valid = load_stack("prod")
    upgrade = upgrade_plan(valid.stack, valid.plan)
    largest = largest_fitting_surge(valid.stack, valid.plan)
    assert upgrade.max_surge_percent == largest == 56  # 8 L4 replicas x 0.56 = 4.48: 4
    assert all(p.peak_nodes <= p.max_nodes for p in upgrade.pools)
    assert [s.new_capacity for s in upgrade.steps] == [56, 100]
    assert largest is not None
    beyond = step_peaks(valid.stack, valid.plan, largest + 1)  # 8 x 0.57 = 4.56: 5 replicas
    assert any(p.peak_nodes > p.max_nodes for p in beyond)
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


def test_the_duration_is_the_steps_plus_the_deletion_delay_and_prices_the_upgrade() -> None:
    valid = load_stack("prod")
    upgrade = upgrade_plan(valid.stack, valid.plan)
    assert upgrade.deletion_delay_seconds == cluster_deletion_delay_s(valid.stack) > 0
    assert upgrade.estimated_seconds == (sum(s.seconds for s in upgrade.steps)
                                         + upgrade.deletion_delay_seconds)
    assert all(s.seconds == POD_START_S + s.traffic_moves * upgrade.interval_seconds
               for s in upgrade.steps if upgrade.interval_seconds is not None)
    cost = estimate_cost(valid.stack, valid.plan)
    assert cost.upgrade_hours == round(upgrade.estimated_seconds / 3600, 2)
    assert cost.upgrade_hours_from == "the upgrade plan's estimate"
    timed = parse_stack_config("prod", {**read_stack_file(stack_file("prod")),
                                        "cost": {"upgrade_hours": 2}})
    assert estimate_cost(timed, valid.plan).upgrade_hours == 2


def test_new_cluster_has_one_switch_and_both_clusters_at_max_as_its_worst_case() -> None:
    valid = load_stack("dev")
    upgrade = upgrade_plan(valid.stack, valid.plan)
    assert upgrade.strategy == "NewCluster" and len(upgrade.steps) == 1
    assert step_rows(upgrade) == []  # no incremental steps to show
    for surge in upgrade.pools:
        at_max = valid.plan.pool(surge.pool).nodes_needed
        assert surge.peak_nodes <= surge.double_nodes
        assert surge.double_nodes > at_max or at_max == 0


def test_the_output_reads_back_to_the_same_plan() -> None:
    valid = load_stack("prod")
    upgrade = upgrade_plan(valid.stack, valid.plan)
    assert UpgradePlan.from_output(upgrade.to_output()) == upgrade
    written = upgrade_plan(_config("prod", upgrade={"interval_seconds": 90}), valid.plan)
    assert written.written_options == ("intervalSeconds",)
    assert "intervalSeconds 90 (written in the stack)" in upgrade_lines(written)[0]


def test_plan_prints_the_steps_and_the_peak_extra_gpu_nodes_at_80_columns() -> None:
    from servestack.cli import commands  # noqa: F401  (registers the commands)

    valid = load_stack("prod")
    upgrade = upgrade_plan(valid.stack, valid.plan)
    result = CliRunner().invoke(app, ["plan", "--stack", "prod"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Upgrade steps of stack 'prod'" in out
    for row in step_rows(upgrade) + pool_rows(upgrade):
        assert re.search(r"^" + r"\s+".join(map(re.escape, row)) + r"\s*$", out, re.MULTILINE)
    assert upgrade.peak_extra_gpu_nodes > 0
    assert " ".join(f"{upgrade.peak_extra_gpu_nodes} of them GPU nodes".split()) in " ".join(
        out.split())
    tables = [line for line in out.splitlines() if not line.startswith("warning:")]
    assert max(len(line.rstrip()) for line in tables) <= 80  # warnings wrap in the terminal
    document = json.loads(CliRunner().invoke(app, ["plan", "--stack", "prod", "--json"]).stdout)
    assert UpgradePlan.from_output(document["upgrade"]) == upgrade


def _config(stack: str, **rayservice: object) -> StackConfig:
    raw = read_stack_file(stack_file(stack))
    values = raw["rayservice"]
    return parse_stack_config(stack, {**raw, "rayservice": {**values, **rayservice}})
