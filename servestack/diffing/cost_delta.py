"""What a change does to a stack's cost: the two renders' `costEstimate` outputs side by side.

Each side was priced by its own code and price table, so a price update shows up like any
other change. Figures are read, never recomputed, so the diff says what `plan` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from infra.capacity import Load
from infra.pod_preview import as_list, as_mapping

Side = Literal["old", "new"]


@dataclass(frozen=True)
class CostDelta:
    old: Mapping[str, Any] | None  # None: that side has no estimate (no stack, or older code)
    new: Mapping[str, Any] | None

    def side(self, side: Side) -> Mapping[str, Any] | None:
        return self.old if side == "old" else self.new

    def per_month(self, side: Side, load: Load) -> float | None:
        """None when the side has no estimate or its total is unknown (see `known`)."""
        value = as_mapping(as_mapping(self.side(side)).get("per_month")).get(load.value)
        return float(value) if isinstance(value, int | float) else None

    def known(self, side: Side) -> bool:
        """The side has an estimate whose every pool is priced."""
        estimate = self.side(side)
        return estimate is not None and not as_list(estimate.get("unpriced_pools"))

    def change(self, load: Load) -> float | None:
        before, after = self.per_month("old", load), self.per_month("new", load)
        return None if before is None or after is None else round(after - before, 2)

    def pools(self, side: Side) -> dict[str, Mapping[str, Any]]:
        return {str(as_mapping(p).get("pool")): as_mapping(p)
                for p in as_list(as_mapping(self.side(side)).get("pools"))}

    def upgrade(self) -> Mapping[str, Any]:
        """The working tree's upgrade figures: what the change's rollout would cost."""
        return as_mapping(as_mapping(self.new).get("upgrade"))

    @property
    def changed(self) -> bool:
        return self.old != self.new


def cost_delta(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> CostDelta | None:
    """None when neither side has an estimate (both renders predate it)."""
    if old is None and new is None:
        return None
    return CostDelta(old, new)
