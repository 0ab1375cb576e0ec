"""stack-within-budget: the stack's monthly cost at max (and min) against `servestack:budget`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import EnforcementLevel
from typer.testing import CliRunner

from infra.capacity import Load, plan_capacity
from infra.config import StackConfig, parse_stack_config
from infra.cost import estimate_cost, money
from infra.stack_file import read_stack_file, stack_file
from policies.enforcement import levels_for, stack_levels
from policies.rules.budget import check_stack_within_budget
from servestack.cli import app


def prod(**budget: Any) -> StackConfig:
    raw = read_stack_file(stack_file("prod"))
    raw["budget"] = budget
    return parse_stack_config("prod", raw)


def findings(config: StackConfig) -> list[str]:
    return [message for message, _ in check_stack_within_budget([], config)]


def monthly(config: StackConfig, load: Load) -> float:
    value = estimate_cost(config, plan_capacity(config)).per_month(load)
    assert value is not None
    return value


def test_shipped_prod_is_within_its_budget() -> None:
    config = parse_stack_config("prod", read_stack_file(stack_file("prod")))
    assert config.budget is not None and config.budget.enforcement == "mandatory"
    assert findings(config) == []


def test_over_the_ceiling_at_max_names_the_budget_the_cost_and_the_costliest_pool() -> None:
    at_max = monthly(prod(monthly_max=1), Load.MAX)
    (message,) = findings(prod(monthly_max=round(at_max) - 1))
    assert f"the stack costs {money(at_max)}/month with every deployment at max_replicas" in (
        message)
    assert f"over servestack:budget.monthly_max ({money(round(at_max) - 1)}/month)" in message
    assert "pool gpu-l4 costs most: 4 x g2-standard-16" in message
    assert findings(prod(monthly_max=round(at_max) + 1)) == []


def test_the_minimum_ceiling_is_checked_at_min_replicas() -> None:
    at_min = monthly(prod(monthly_max=10**6), Load.MIN)
    (message,) = findings(prod(monthly_max=10**6, monthly_min=at_min - 10))
    assert "budget.monthly_min" in message and "at min_replicas" in message
    assert "pool cpu costs most" in message


def test_an_unpriced_pool_makes_the_budget_a_violation_not_a_pass() -> None:
    raw = read_stack_file(stack_file("prod"))
    raw["pools"][1]["machine_type"] = "g2-custom-99"
    (message,) = findings(parse_stack_config("prod", raw))
    assert "servestack:budget cannot be checked: price unknown for pools gpu-l4" in message


def test_the_budget_sets_its_own_level_over_the_environment_under_the_pack_config() -> None:
    advisory = stack_levels(prod(monthly_max=1, enforcement="advisory"))
    assert levels_for("prod", stack=advisory)["stack-within-budget"] == EnforcementLevel.ADVISORY
    assert levels_for("dev")["stack-within-budget"] == EnforcementLevel.ADVISORY
    assert levels_for("prod")["stack-within-budget"] == EnforcementLevel.MANDATORY
    assert stack_levels(prod(monthly_max=1)) == {}
    overridden = levels_for("prod", {"stack-within-budget": EnforcementLevel.DISABLED}, advisory)
    assert overridden["stack-within-budget"] == EnforcementLevel.DISABLED


def test_check_warns_on_an_advisory_budget_and_exits_0(tmp_path: Path) -> None:
    from servestack.cli import commands  # noqa: F401  (registers the commands)

    document = yaml.safe_load(stack_file("prod").read_text())
    document["config"]["servestack:budget"] = {"monthly_max": 1000, "enforcement": "advisory"}
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = CliRunner().invoke(app, ["check", "--stack-file", str(path)])
    assert result.exit_code == 0, result.output
    assert "[advisory]  stack-within-budget" in result.output
    assert "servestack:budget.monthly_max ($1,000.00/month)" in " ".join(result.output.split())
