"""The stack's cost settings: a pool's own price, the `budget`, and how long an upgrade lasts.

A pool's `price` replaces the shipped list price (infra/prices.csv) with the one the stack
actually pays, e.g. a committed-use or negotiated rate; infra/cost.py does the arithmetic.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from apps.spec import SpecModel


class PoolPrice(SpecModel):
    """What one node of a pool costs per hour, as the stack pays it (GPUs included)."""

    on_demand_per_hour: float | None = Field(
        None, ge=0, description="USD per node-hour when the pool is not spot.")
    spot_per_hour: float | None = Field(
        None, ge=0, description="USD per node-hour when the pool is spot.")

    @model_validator(mode="after")
    def _some_price(self) -> Self:
        if self.on_demand_per_hour is None and self.spot_per_hour is None:
            raise ValueError("give on_demand_per_hour, spot_per_hour or both")
        return self

    def for_capacity(self, spot: bool) -> float | None:
        return self.spot_per_hour if spot else self.on_demand_per_hour


class Budget(SpecModel):
    """A monthly ceiling on what the stack's node pools cost (list prices or the pools' own)."""

    monthly_max: float = Field(
        gt=0, description="USD per month the stack may cost with every deployment at "
        "max_replicas.")
    monthly_min: float | None = Field(
        None, gt=0, description="USD per month the stack may cost with every deployment at "
        "min_replicas (its idle footprint); null: no ceiling at min.")
    enforcement: Literal["advisory", "mandatory"] | None = Field(
        None, description="Level of the stack-within-budget policy; null: the stack's "
        "environment level (docs/policies.md).")

    @model_validator(mode="after")
    def _min_below_max(self) -> Self:
        if self.monthly_min is not None and self.monthly_min > self.monthly_max:
            raise ValueError(f"monthly_min ({self.monthly_min:g}) > monthly_max "
                             f"({self.monthly_max:g}); the idle footprint cannot cost more "
                             "than the worst case")
        return self


class CostConfig(SpecModel):
    """What the cost estimate cannot read from the plan."""

    upgrade_hours: float | None = Field(
        None, gt=0, description="Hours an upgrade runs the new Ray cluster beside the old one "
        "(nodes start, images pull, models load, traffic moves, the old cluster is deleted): "
        "the duration plan and diff price an upgrade for. Unset: the upgrade plan's estimate "
        "(docs/upgrades.md); set it from a timed rollout of yours.")
