"""infra/cost.py: the price table, pools' own prices, and nodes x price at each load."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from infra.capacity import Load, plan_capacity
from infra.config import StackConfigError, parse_stack_config
from infra.cost import (
    HOURS_PER_MONTH,
    PRICE_TABLE,
    PriceTableError,
    estimate_cost,
    money,
    price_table,
    read_price_table,
)
from infra.stack_file import available_stacks, load_stack, read_stack_file, stack_file

COMMON_GPU_TYPES = {
    "gcp": ("n2-standard-", "g2-standard-", "a2-highgpu-", "a3-highgpu-"),
    "aws": ("m6i.", "g5.", "g6.", "p4d.", "p5."),
}


def prod_raw() -> dict[str, Any]:
    return read_stack_file(stack_file("prod"))


def estimate(raw: dict[str, Any], name: str = "prod") -> Any:
    config = parse_stack_config(name, raw)
    return estimate_cost(config, plan_capacity(config))


@pytest.mark.parametrize("stack", available_stacks())
def test_every_pool_of_every_shipped_stack_is_priced(stack: str) -> None:
    """A new stack file is covered too: its pools need a list price or their own `price`."""
    valid = load_stack(stack)
    cost = estimate_cost(valid.stack, valid.plan)
    assert cost.unpriced == (), [p.price.source for p in cost.pools if not p.price.known]
    for load in Load:
        assert cost.per_month(load) is not None


def test_the_table_covers_the_common_types_of_both_clouds_with_sources_and_dates() -> None:
    table = price_table()
    for cloud, families in COMMON_GPU_TYPES.items():
        rows = [row for row in table.rows if row.cloud == cloud]
        for family in families:
            assert any(row.machine_type.startswith(family) for row in rows), family
    for row in table.rows:
        assert row.source.startswith("https://") and row.read_on
        assert (row.gpus > 0) == (row.gpu_type is not None)
    gpus = {row.machine_type: (row.gpus, row.gpu_type) for row in table.rows}
    assert gpus["g2-standard-16"] == (1, "L4")
    assert gpus["a3-highgpu-8g"] == (8, "H100-80GB")
    assert gpus["g5.2xlarge"] == (1, "A10G")
    assert gpus["p4d.24xlarge"] == (8, "A100-40GB")


def test_a_broken_table_row_is_named_by_its_line(tmp_path: Path) -> None:
    lines = PRICE_TABLE.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("cloud,"))
    bad = lines[header + 1].replace(",0,,", ",2,,", 1)  # GPUs without a type
    broken = tmp_path / "prices.csv"
    broken.write_text("\n".join([*lines[: header + 1], bad, lines[header + 1]]) + "\n")
    with pytest.raises(PriceTableError) as error:
        read_price_table(broken)
    assert f"prices.csv:{header + 2}:" in str(error.value)
    assert "gpu_type" in str(error.value)
    duplicated = tmp_path / "twice.csv"
    duplicated.write_text("\n".join([*lines[: header + 2], lines[header + 1]]) + "\n")
    with pytest.raises(PriceTableError, match="repeated"):
        read_price_table(duplicated)


def test_nodes_times_price_at_each_load_with_min_nodes_billed_and_730_hours() -> None:
    valid = load_stack("prod")
    cost = estimate_cost(valid.stack, valid.plan)
    for pool_cost in cost.pools:
        pool, plan = valid.stack.pool(pool_cost.pool), valid.plan.pool(pool_cost.pool)
        row = price_table().find(str(pool.machine_type), "us-central1")
        assert row is not None and pool_cost.price.per_hour == row.on_demand_per_hour
        for load in Load:
            nodes = max(pool.min_nodes, plan.nodes(load))
            assert pool_cost.nodes(load) == nodes
            assert pool_cost.per_hour(load) == pytest.approx(nodes * row.on_demand_per_hour)
            assert pool_cost.gpus(load) == nodes * pool.gpus
    assert cost.per_month(Load.MAX) == pytest.approx(
        HOURS_PER_MONTH * sum(p.per_hour(Load.MAX) or 0 for p in cost.pools))
    assert cost.per_hour(Load.MIN) <= cost.per_hour(Load.INITIAL) <= cost.per_hour(Load.MAX)


def test_spot_pools_take_the_spot_price_and_a_zone_its_region() -> None:
    valid = load_stack("dev")  # zonal us-central1-a, spot L4 pool
    cost = estimate_cost(valid.stack, valid.plan)
    gpu = next(p for p in cost.pools if p.pool == "gpu-l4")
    row = price_table().find("g2-standard-8", "us-central1")
    assert row is not None and gpu.spot and gpu.price.per_hour == row.spot_per_hour
    assert gpu.price.source == row.spot_source


def test_an_unknown_machine_type_is_unknown_not_zero_and_so_are_the_totals() -> None:
    raw = prod_raw()
    raw["pools"][1]["machine_type"] = "g2-custom-99"
    cost = estimate(raw)
    assert cost.unpriced == ("gpu-l4",)
    assert cost.per_hour(Load.MAX) is None and cost.per_month(Load.MIN) is None
    assert money(cost.per_month(Load.MAX)) == "price unknown"
    assert cost.known_per_hour(Load.MAX) == pytest.approx(cost.pools[0].per_hour(Load.MAX))
    assert cost.upgrade_extra_cost is None
    gpu = cost.pools[1]
    assert "no on-demand list price for g2-custom-99 in us-central1" in gpu.price.source
    assert "give pools[gpu-l4].price" in gpu.price.source


def test_a_pools_own_price_replaces_the_list_price() -> None:
    raw = prod_raw()
    raw["pools"][1]["price"] = {"on_demand_per_hour": 0.8}
    gpu = estimate(raw).pools[1]
    assert (gpu.price.basis, gpu.price.per_hour) == ("stack", 0.8)
    assert gpu.price.source == "pools[gpu-l4].price"
    spot = copy.deepcopy(raw)
    spot["pools"][1]["spot"] = True
    with pytest.raises(StackConfigError) as error:
        parse_stack_config("prod", spot)
    assert "pools[gpu-l4].price.spot_per_hour" in str(error.value)
    assert "the pool is spot: give its spot price" in str(error.value)


def test_kind_nodes_are_not_billed_and_an_existing_cluster_needs_pool_prices() -> None:
    valid = load_stack("local")
    cost = estimate_cost(valid.stack, valid.plan)
    assert {p.price.basis for p in cost.pools} == {"not billed"}
    assert cost.per_month(Load.MAX) == 0
    existing = read_stack_file(Path(__file__).parents[1] / "fixtures" / "onprem-mig.yaml")
    config = parse_stack_config("onprem", existing)
    unknown = estimate_cost(config, plan_capacity(config))
    assert unknown.unpriced and unknown.per_month(Load.MAX) is None
    assert "the existing backend names no region" in unknown.pools[0].price.source


def test_an_upgrade_adds_the_nodes_the_plan_needs_beside_max_for_upgrade_hours() -> None:
    raw = prod_raw()
    raw["cost"] = {"upgrade_hours": 2}
    config = parse_stack_config("prod", raw)
    plan = plan_capacity(config)
    cost = estimate_cost(config, plan)
    extra = 0.0
    for pool_cost in cost.pools:
        pool = config.pool(pool_cost.pool)
        during = min(pool.max_nodes, plan.pool(pool.name).nodes_needed_during_upgrade)
        assert pool_cost.upgrade_extra_nodes == during - pool_cost.nodes(Load.MAX)
        extra += pool_cost.upgrade_extra_nodes * (pool_cost.price.per_hour or 0)
    assert extra > 0
    assert cost.upgrade_extra_per_hour == pytest.approx(extra)
    assert cost.upgrade_extra_cost == pytest.approx(2 * extra)
    assert cost.upgrade_peak_per_hour == pytest.approx(cost.per_hour(Load.MAX) + extra)
    raw["rayservice"]["upgrade_strategy"] = "None"
    assert estimate(raw).upgrade_extra_cost == 0


def test_a_budget_minimum_above_its_maximum_is_refused() -> None:
    raw = prod_raw()
    raw["budget"] = {"monthly_max": 100, "monthly_min": 200}
    with pytest.raises(StackConfigError, match=r"monthly_min \(200\) > monthly_max \(100\)"):
        parse_stack_config("prod", raw)
