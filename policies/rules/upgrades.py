"""The rendered upgrade strategy fits the pools: KubeRay's steps, sized by the same
arithmetic as infra/upgrade_plan.py, leave every pool within its max_nodes.

A surge the pools cannot hold stalls an upgrade halfway, with both clusters up and the new
one waiting for nodes that never come.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from infra.capacity import CapacityError, plan_capacity
from infra.config import PROJECT, StackConfig
from infra.field_paths import pool_path
from infra.pod_preview import RAYSERVICE_TYPE, as_mapping
from infra.upgrade_plan import INCREMENTAL, UPGRADE_OPTIONS_PATH, step_peaks

Finding = tuple[str, str | None]
DEFAULT_MAX_SURGE = 100
"""KubeRay 1.7.0's maxSurgePercent when the RayService leaves it out."""
OPTIONS = "spec.upgradeStrategy.clusterUpgradeOptions"


def check_upgrade_steps_fit(resources: Sequence[Any], stack: StackConfig) -> Iterator[Finding]:
    try:
        plan = plan_capacity(stack)
    except CapacityError:
        return  # capacity-plan-fits reports it
    for resource in resources:
        if resource.resource_type != RAYSERVICE_TYPE:
            continue
        strategy = as_mapping(as_mapping(resource.props.get("spec")).get("upgradeStrategy"))
        if strategy.get("type") != INCREMENTAL:
            continue
        options = as_mapping(strategy.get("clusterUpgradeOptions"))
        surge = int(options.get("maxSurgePercent") or DEFAULT_MAX_SURGE)
        step = options.get("stepSizePercent")
        if isinstance(step, int | float) and step > surge:
            yield (f"{OPTIONS}.stepSizePercent {step:g} is above maxSurgePercent {surge}: "
                   "traffic would outrun the new cluster's capacity", resource.urn)
        for pool in step_peaks(stack, plan, surge):
            if pool.peak_nodes > pool.max_nodes:
                yield (f"{OPTIONS}.maxSurgePercent {surge}: at the upgrade's peak "
                       f"({pool.extra_pods} pod(s) beyond the old cluster at max) pool "
                       f"{pool.pool} needs "
                       f"{pool.peak_nodes} nodes, over {PROJECT}:"
                       f"{pool_path(pool.pool, 'max_nodes')} {pool.max_nodes}: the upgrade "
                       "would stall. Leave "
                       f"{PROJECT}:{UPGRADE_OPTIONS_PATH}.max_surge_percent out (servestack "
                       "derives the largest step that fits) or raise max_nodes to "
                       f"{pool.peak_nodes}", resource.urn)
