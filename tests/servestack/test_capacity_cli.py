"""`servestack plan`: tables, JSON and exit codes, on real stack files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner, Result

import servestack.cli.commands
from infra.capacity import Load, plan_capacity
from infra.config import REPO_ROOT, STACKS_DIR
from infra.cost import estimate_cost, money
from infra.stack_file import available_stacks, load_stack, load_stack_config
from infra.upgrade_plan import upgrade_plan
from servestack.cli import app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def servestack(*args: str) -> Result:
    # Typer runs a lone command without its name; with several it is a group.
    group = isinstance(get_command(app), TyperGroup)
    return CliRunner().invoke(app, [*(["plan"] if group else []), *args])


def stacks_dir_with(tmp_path: Path, fixture: str) -> Path:
    shutil.copy(FIXTURES / f"{fixture}.yaml", tmp_path / f"Pulumi.{fixture}.yaml")
    return tmp_path


def test_plan_prints_deployments_worker_groups_and_pools() -> None:
    result = servestack("--stack", "local")
    assert result.exit_code == 0, result.output
    for title in ("Deployments of stack 'local'", "Worker groups", "Node pools"):
        assert title in result.stdout
    assert "VectorIndex" in result.stdout
    assert "warning: pools[cpu]: a NewCluster upgrade" in result.stdout


def test_plan_json_is_the_capacity_output_with_its_cost() -> None:
    result = servestack("--stack", "local", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    cost, upgrade = document.pop("cost"), document.pop("upgrade")
    config = load_stack_config("local")
    plan = plan_capacity(config)
    assert document == plan.to_output()
    assert cost == estimate_cost(config, plan).to_output()
    assert upgrade == upgrade_plan(config, plan).to_output()


def test_plan_shows_each_pools_cost_at_min_initial_and_max_and_the_totals() -> None:
    result = servestack("--stack", "prod")
    assert result.exit_code == 0, result.output
    valid = load_stack("prod")
    cost = estimate_cost(valid.stack, valid.plan)
    for title in ("Prices per node-hour", "Cost of stack 'prod'"):
        assert title in result.stdout
    for load in Load:
        for pool in cost.pools:
            assert f"{money(pool.per_hour(load))}/h" in result.stdout
            assert f"{money(_month(pool.per_hour(load)))}/mo" in result.stdout
        assert f"{money(cost.per_month(load))}/mo" in result.stdout
    figures = servestack("--stack", "prod", "--json")
    document = json.loads(figures.stdout)["cost"]
    assert document["per_month"] == {load.value: round(cost.per_month(load) or -1, 2)
                                     for load in Load}
    assert document["hours_per_month"] == 730
    assert "more per upgrade" in result.stdout


def _month(per_hour: float | None) -> float | None:
    return None if per_hour is None else per_hour * 730


def test_an_unknown_machine_type_is_price_unknown_never_zero(tmp_path: Path) -> None:
    source = (REPO_ROOT / "stacks" / "Pulumi.prod.yaml").read_text()
    (tmp_path / "Pulumi.odd.yaml").write_text(
        source.replace("machine_type: g2-standard-16", "machine_type: g2-custom-99"))
    result = servestack("--stack", "odd", "--stacks-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    assert "price unknown for pools[gpu-l4]: no on-demand list price for g2-custom-99" in shown
    assert "its cost is unknown: price unknown for pools[gpu-l4]" in shown
    assert "$0.00" not in shown
    document = json.loads(servestack("--stack", "odd", "--stacks-dir", str(tmp_path),
                                     "--json").stdout)["cost"]
    assert document["unpriced_pools"] == ["gpu-l4"]
    assert set(document["per_month"].values()) == {None}
    gpu = next(p for p in document["pools"] if p["pool"] == "gpu-l4")
    assert gpu["price"]["per_hour"] is None and gpu["per_hour"]["max"] is None


def test_plan_exits_2_with_the_field_path_and_fix_when_capacity_does_not_fit(
    tmp_path: Path,
) -> None:
    stacks = stacks_dir_with(tmp_path, "broken-pool-too-small")
    result = servestack("--stack", "broken-pool-too-small", "--stacks-dir", str(stacks))
    assert result.exit_code == 2
    assert "servestack:pools[cpu].max_nodes" in result.stderr
    assert "raise max_nodes to 5" in result.stderr
    assert result.stdout == ""


def test_plan_exits_2_on_an_invalid_stack_file(tmp_path: Path) -> None:
    source = (FIXTURES / "broken-pool-too-small.yaml").read_text()
    (tmp_path / "Pulumi.typo.yaml").write_text(source.replace("max_nodes: 3", "max_node: 3"))
    result = servestack("--stack", "typo", "--stacks-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "servestack:pools[cpu].max_node: unknown field 'max_node'" in result.stderr


def test_plan_exits_2_for_an_unknown_stack(tmp_path: Path) -> None:
    result = servestack("--stack", "nope", "--stacks-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "no stack 'nope'" in result.stderr


@pytest.mark.parametrize("stack", available_stacks(STACKS_DIR))
def test_plan_tables_fit_80_columns_with_names_whole(stack: str) -> None:
    group = isinstance(get_command(app), TyperGroup)
    result = CliRunner().invoke(app, [*(["plan"] if group else []), "--stack", stack],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    tables = result.stdout.split("\nwarning:")[0].splitlines()  # warnings are sentences
    assert max(len(line.rstrip()) for line in tables) <= 80
    words = {word for line in tables for word in line.split()}
    capacity = load_stack(stack, STACKS_DIR).plan
    for name in [g.name for g in capacity.worker_groups] + [p.pool for p in capacity.pools]:
        assert name in words, f"{name} is broken across lines"
