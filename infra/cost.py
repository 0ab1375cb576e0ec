"""What a stack costs: the capacity plan's node counts x each pool's price per node-hour.

Pure, like the plan it reads. A pool's price is its own `price:` from the stack, else the
list price of its machine type in its cluster's region from infra/prices.csv; kind's nodes
are not billed. A pool with no known price is "price unknown": it is never counted as 0, so
every total that would include it is unknown too (and says which pools it lacks). Nodes are
billed as the autoscaler keeps them: at least `min_nodes`, else what the plan needs at each
load. docs/cost.md states what the figures include and leave out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

from apps.spec import SpecError, SpecModel
from infra.capacity import CapacityPlan, Load, PoolPlan
from infra.config import NodePool, StackConfig
from infra.upgrade_plan import upgrade_hours

HOURS_PER_MONTH = 730
"""The month cloud price pages quote: 365 x 24 / 12 hours."""
PRICE_TABLE = Path(__file__).with_name("prices.csv")
PRICE_UNKNOWN = "price unknown"
NOT_BILLED = "not billed"

Basis = Literal["stack", "list", "not billed", "unknown"]


class PriceRow(SpecModel):
    """One machine type in one region, as its provider's public price pages list it."""

    cloud: Literal["gcp", "aws"] = Field(description="Whose price list.")
    machine_type: str = Field(min_length=1, description="Machine or instance type.")
    region: str = Field(min_length=1, description="Region the price applies in.")
    on_demand_per_hour: float = Field(gt=0, description="USD per node-hour, on demand.")
    spot_per_hour: float | None = Field(None, gt=0, description="USD per node-hour, spot.")
    gpus: int = Field(ge=0, description="GPUs per node the price includes.")
    gpu_type: str | None = Field(None, description="Which GPU, e.g. L4 or A100-40GB.")
    source: str = Field(pattern=r"^https://", description="The on-demand price page.")
    spot_source: str | None = Field(None, pattern=r"^https://", description="The spot page.")
    read_on: date = Field(description="The date its source says the prices were generated, "
                          "else the date the source was read (prices.csv's header).")

    @model_validator(mode="after")
    def _gpus_named(self) -> Self:
        if bool(self.gpus) != bool(self.gpu_type):
            raise ValueError("give gpu_type exactly when gpus > 0")
        if self.spot_per_hour is not None and self.spot_source is None:
            raise ValueError("a spot price needs its spot_source")
        return self

    def per_hour(self, spot: bool) -> float | None:
        return self.spot_per_hour if spot else self.on_demand_per_hour


class PriceTable(SpecModel):
    rows: tuple[PriceRow, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_row_per_type_and_region(self) -> Self:
        keys = [(row.machine_type, row.region) for row in self.rows]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"rows repeated for (machine_type, region): {repeated}")
        return self

    def find(self, machine_type: str, region: str) -> PriceRow | None:
        return next((row for row in self.rows
                     if row.machine_type == machine_type and row.region == region), None)


class PriceTableError(ValueError):
    """The shipped price table does not load: each problem names its line."""


def read_price_table(path: Path = PRICE_TABLE) -> PriceTable:
    """The table, `#` lines skipped, empty cells read as null; every bad row is reported."""
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1)
             if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(line for _, line in lines)
    rows, problems = [], []
    for (number, _), raw in zip(lines[1:], reader, strict=True):
        try:
            rows.append(PriceRow.model_validate({k: v or None for k, v in raw.items()}))
        except ValidationError as error:
            problems += [f"{path.name}:{number}: {where}: {message}" for where, message
                         in SpecError.from_validation_error(error).problems]
    if problems:
        raise PriceTableError("\n".join(problems))
    try:
        return PriceTable(rows=tuple(rows))
    except ValidationError as error:
        raise PriceTableError(f"{path.name}: {error.errors()[0]['msg']}") from None


@cache
def price_table() -> PriceTable:
    return read_price_table()


@dataclass(frozen=True)
class NodePrice:
    """What one node of a pool costs per hour, and where that figure comes from."""

    per_hour: float | None  # None: unknown
    basis: Basis
    source: str  # the page, the stack field, or why the price is unknown
    gpus: int  # per node
    read_on: date | None = None

    @property
    def known(self) -> bool:
        return self.per_hour is not None

    def to_output(self) -> dict[str, Any]:
        return {"basis": self.basis, "gpus": self.gpus, "per_hour": self.per_hour,
                "read_on": self.read_on.isoformat() if self.read_on else None,
                "source": self.source}


def node_price(stack: StackConfig, pool: NodePool, table: PriceTable | None = None) -> NodePrice:
    cluster = stack.cluster
    if not cluster.billed:
        return NodePrice(0.0, "not billed", f"{cluster.backend} nodes run on your own machine",
                         pool.gpus)
    if pool.price is not None:
        return NodePrice(pool.price.for_capacity(pool.spot), "stack", pool.path("price"),
                         pool.gpus)
    capacity = "spot" if pool.spot else "on-demand"
    region = cluster.price_region
    if region is None:
        return NodePrice(None, "unknown", f"the {cluster.backend} backend names no region; "
                         f"give {pool.path('price')}", pool.gpus)
    if not pool.machine_type:
        return NodePrice(None, "unknown", f"no machine_type; give {pool.path('price')}",
                         pool.gpus)
    row = (table or price_table()).find(pool.machine_type, region)
    per_hour = row.per_hour(pool.spot) if row else None
    if row is None or per_hour is None:
        return NodePrice(None, "unknown", f"no {capacity} list price for {pool.machine_type} in "
                         f"{region} in infra/prices.csv; give {pool.path('price')}", pool.gpus)
    source = row.spot_source if pool.spot and row.spot_source else row.source
    return NodePrice(per_hour, "list", source, pool.gpus, row.read_on)


@dataclass(frozen=True)
class PoolCost:
    pool: str
    machine_type: str | None
    spot: bool
    price: NodePrice
    nodes_at_min: int  # billed: at least min_nodes
    nodes_at_initial: int
    nodes_at_max: int
    upgrade_extra_nodes: int  # what an upgrade at max load adds, within max_nodes

    def nodes(self, load: Load) -> int:
        return load.pick(self.nodes_at_min, self.nodes_at_initial, self.nodes_at_max)

    def gpus(self, load: Load) -> int:
        return self.nodes(load) * self.price.gpus

    def per_hour(self, load: Load) -> float | None:
        return None if self.price.per_hour is None else self.nodes(load) * self.price.per_hour

    @property
    def upgrade_extra_per_hour(self) -> float | None:
        price = self.price.per_hour
        return None if price is None else self.upgrade_extra_nodes * price

    def to_output(self) -> dict[str, Any]:
        return {
            "gpus": {load.value: self.gpus(load) for load in Load},
            "machine_type": self.machine_type,
            "nodes": {load.value: self.nodes(load) for load in Load},
            "per_hour": {load.value: _money(self.per_hour(load)) for load in Load},
            "per_month": {load.value: _money(_monthly(self.per_hour(load))) for load in Load},
            "pool": self.pool,
            "price": self.price.to_output(),
            "spot": self.spot,
            "upgrade_extra_nodes": self.upgrade_extra_nodes,
            "upgrade_extra_per_hour": _money(self.upgrade_extra_per_hour),
        }


def pool_cost(stack: StackConfig, pool: NodePool, plan: PoolPlan,
              table: PriceTable | None = None) -> PoolCost:
    def billed(needed: int) -> int:
        return min(pool.max_nodes, max(pool.min_nodes, needed))

    at_max = billed(plan.nodes(Load.MAX))
    return PoolCost(
        pool=pool.name, machine_type=pool.machine_type, spot=pool.spot,
        price=node_price(stack, pool, table),
        nodes_at_min=billed(plan.nodes(Load.MIN)),
        nodes_at_initial=billed(plan.nodes(Load.INITIAL)), nodes_at_max=at_max,
        upgrade_extra_nodes=billed(plan.nodes_needed_during_upgrade) - at_max,
    )


@dataclass(frozen=True)
class CostEstimate:
    stack: str
    pools: tuple[PoolCost, ...]
    upgrade_strategy: str
    upgrade_hours: float
    upgrade_hours_from: str  # `cost.upgrade_hours`, or the upgrade plan's estimate

    @property
    def unpriced(self) -> tuple[str, ...]:
        """Pools whose price is unknown: every total that includes them is unknown."""
        return tuple(p.pool for p in self.pools if not p.price.known)

    def per_hour(self, load: Load) -> float | None:
        return _total(p.per_hour(load) for p in self.pools)

    def per_month(self, load: Load) -> float | None:
        return _monthly(self.per_hour(load))

    def known_per_hour(self, load: Load) -> float:
        """The priced pools alone: a lower bound when some pool is unpriced."""
        return sum(p.per_hour(load) or 0.0 for p in self.pools if p.price.known)

    def known_per_month(self, load: Load) -> float:
        return self.known_per_hour(load) * HOURS_PER_MONTH

    def gpus(self, load: Load) -> int:
        return sum(p.gpus(load) for p in self.pools)

    @property
    def upgrade_extra_per_hour(self) -> float | None:
        return _total(p.upgrade_extra_per_hour for p in self.pools)

    @property
    def upgrade_peak_per_hour(self) -> float | None:
        """The whole stack while an upgrade at max load runs both Ray clusters."""
        extra, at_max = self.upgrade_extra_per_hour, self.per_hour(Load.MAX)
        return None if extra is None or at_max is None else at_max + extra

    @property
    def upgrade_extra_cost(self) -> float | None:
        """What one upgrade adds: the extra nodes for `upgrade_hours`."""
        extra = self.upgrade_extra_per_hour
        return None if extra is None else extra * self.upgrade_hours

    def costliest(self, load: Load = Load.MAX) -> PoolCost | None:
        """The priced pool that costs most at `load`."""
        priced = [p for p in self.pools if p.price.known]
        return max(priced, key=lambda p: p.per_hour(load) or 0.0, default=None)

    def to_output(self) -> dict[str, Any]:
        """JSON-able, keys sorted: the `costEstimate` stack output and `plan --json`'s `cost`."""
        return {
            "gpus": {load.value: self.gpus(load) for load in Load},
            "hours_per_month": HOURS_PER_MONTH,
            "per_hour": {load.value: _money(self.per_hour(load)) for load in Load},
            "per_month": {load.value: _money(self.per_month(load)) for load in Load},
            "pools": [p.to_output() for p in self.pools],
            "stack": self.stack,
            "unpriced_pools": list(self.unpriced),
            "upgrade": {
                "extra_cost": _money(self.upgrade_extra_cost),
                "extra_nodes": sum(p.upgrade_extra_nodes for p in self.pools),
                "extra_per_hour": _money(self.upgrade_extra_per_hour),
                "hours": self.upgrade_hours,
                "hours_from": self.upgrade_hours_from,
                "peak_per_hour": _money(self.upgrade_peak_per_hour),
                "strategy": self.upgrade_strategy,
            },
        }


def estimate_cost(stack: StackConfig, plan: CapacityPlan,
                  table: PriceTable | None = None) -> CostEstimate:
    hours, hours_from = upgrade_hours(stack, plan)
    return CostEstimate(
        stack=stack.stack,
        pools=tuple(pool_cost(stack, pool, plan.pool(pool.name), table) for pool in stack.pools),
        upgrade_strategy=plan.upgrade_strategy,
        upgrade_hours=hours,
        upgrade_hours_from=hours_from,
    )


def _total(amounts: Iterable[float | None]) -> float | None:
    values = list(amounts)
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _monthly(per_hour: float | None) -> float | None:
    return None if per_hour is None else per_hour * HOURS_PER_MONTH


def _money(amount: float | None) -> float | None:
    """Cents, so every reader (plan, diff, the budget) shows the same figure."""
    return None if amount is None else round(amount, 2)


def money(amount: float | None, digits: int = 2) -> str:
    """`$1,234.56`, or "price unknown": never a 0 that is not one."""
    return PRICE_UNKNOWN if amount is None else f"${amount:,.{digits}f}"


def signed_money(amount: float | None) -> str:
    if amount is None:
        return PRICE_UNKNOWN
    return f"{'+' if amount >= 0 else '-'}${abs(amount):,.2f}"


def outputs_by_pool(output: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A `costEstimate` output's pools by name."""
    return {str(p["pool"]): p for p in output.get("pools") or []}
