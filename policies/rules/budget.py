"""The stack stays within its `budget`: what its node pools cost per month at max (and at min).

Priced by infra.cost from the same capacity plan the program builds; a pool with no known
price makes the budget uncheckable, which is a violation too rather than a silent pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from infra.capacity import CapacityError, Load, plan_capacity
from infra.config import PROJECT, StackConfig
from infra.cost import HOURS_PER_MONTH, CostEstimate, estimate_cost, money

Finding = tuple[str, str | None]


def check_stack_within_budget(resources: Sequence[Any], stack: StackConfig) -> Iterator[Finding]:
    budget = stack.budget
    if budget is None:
        return
    try:
        cost = estimate_cost(stack, plan_capacity(stack))
    except CapacityError:
        return  # capacity-plan-fits reports it
    ceilings = [(Load.MAX, "monthly_max", budget.monthly_max)]
    if budget.monthly_min is not None:
        ceilings.append((Load.MIN, "monthly_min", budget.monthly_min))
    if cost.unpriced:
        yield (f"{PROJECT}:budget cannot be checked: price unknown for pools "
               f"{', '.join(cost.unpriced)}; give each a `price` (docs/cost.md)", None)
        return
    for load, field, ceiling in ceilings:
        yield from _over(cost, load, f"{PROJECT}:budget.{field}", ceiling)


def _over(cost: CostEstimate, load: Load, budget: str, ceiling: float) -> Iterator[Finding]:
    at, fix = (("every deployment at max_replicas", "lower the max_replicas of the "
                "deployments on that pool") if load is Load.MAX
               else ("every deployment at min_replicas", "lower that pool's min_nodes or the "
                     "min_replicas of the deployments on it"))
    monthly = cost.per_month(load) or 0.0  # every pool is priced here
    if round(monthly, 2) <= ceiling:
        return
    top = cost.costliest(load)
    costliest = ""
    if top is not None:
        costliest = (f"; pool {top.pool} costs most: {top.nodes(load)} x "
                     f"{top.machine_type or 'node'} = "
                     f"{money((top.per_hour(load) or 0.0) * HOURS_PER_MONTH)}/month")
    yield (f"the stack costs {money(monthly)}/month with {at}, over {budget} "
           f"({money(ceiling)}/month){costliest}. To fit, {fix}, use cheaper or spot nodes, "
           "or raise the budget", None)
