"""The upgrade plan in words and rows, one wording for `plan`'s tables and `diff`'s comment.

Figures come from `infra.upgrade_plan` (or its `upgradePlan` output read back), never
recomputed here, so the PR comment says what `plan` says.
"""

from __future__ import annotations

from infra.upgrade_plan import (
    CLUSTER_UPGRADE_OPTIONS,
    INCREMENTAL,
    POD_START_S,
    UpgradePlan,
    readable_duration,
)

STEP_HEADER = ("step", "new cluster", "old cluster", "traffic on new", "moves", "takes")
STEP_NOTE = ("new/old cluster: Serve target_capacity after the step; moves: traffic moves, "
             "one per interval")
POOL_HEADER = ("pool", "extra pods", "extra nodes", "extra GPUs", "peak nodes", "both at max",
               "max nodes")
POOL_NOTE = "both at max: nodes if the new cluster reached max beside the old"
PEAK_COLUMN = POOL_HEADER.index("peak nodes")
DERIVED_FROM = {
    "max_surge_percent": "the largest step whose peak fits every pool's max_nodes",
    "step_size_percent": "maxSurgePercent",
    "interval_seconds": "the slowest deployment's health check period plus timeout, or "
                        "upscale delay",
}
"""Why each clusterUpgradeOptions value is what it is, when the stack leaves it out."""


def step_rows(upgrade: UpgradePlan) -> list[tuple[str, ...]]:
    """KubeRay's incremental steps; none under NewCluster (one switch) or None."""
    if upgrade.strategy != INCREMENTAL:
        return []
    return [(str(number), f"{step.new_capacity}%", f"{step.old_capacity}%",
             f"{step.new_capacity}%", str(step.traffic_moves), readable_duration(step.seconds))
            for number, step in enumerate(upgrade.steps, start=1)]


def pool_rows(upgrade: UpgradePlan) -> list[tuple[str, ...]]:
    return [(s.pool, str(s.extra_pods), str(s.extra_nodes), str(s.extra_gpus),
             str(s.peak_nodes), str(s.double_nodes), str(s.max_nodes)) for s in upgrade.pools]


def over_max(upgrade: UpgradePlan) -> set[str]:
    """Pools whose peak exceeds max_nodes: the new cluster waits for capacity there."""
    return {s.pool for s in upgrade.pools if s.peak_nodes > s.max_nodes}


def upgrade_lines(upgrade: UpgradePlan) -> list[str]:
    """What the rows mean: how the options were chosen, the peak and the duration."""
    if not upgrade.steps:
        return ["upgrade strategy None: KubeRay does not roll out a change that would replace "
                "the Ray cluster, so no upgrade plan and no second cluster"]
    lines = []
    if upgrade.strategy == INCREMENTAL:
        lines.append("clusterUpgradeOptions: " + "; ".join(
            f"{name} {getattr(upgrade, field)} ("
            + ("written in the stack" if name in upgrade.written_options
               else f"derived: {DERIVED_FROM[field]}")
            + ")" for field, name in CLUSTER_UPGRADE_OPTIONS.items()))
    else:
        lines.append(f"{upgrade.strategy}: the whole new cluster starts (initial replicas) "
                     "beside the old one at max; traffic switches at once when its Serve "
                     "applications are ready")
    lines.append(f"peak extra at max load: {upgrade.peak_extra_nodes} node(s), "
                 f"{upgrade.peak_extra_gpu_nodes} of them GPU nodes with "
                 f"{upgrade.peak_extra_gpus} GPU(s); about "
                 f"{readable_duration(upgrade.estimated_seconds)} with both clusters up, the "
                 f"old one deleted {readable_duration(upgrade.deletion_delay_seconds)} after "
                 f"the switch (each step's pods assumed to start in "
                 f"{readable_duration(POD_START_S)}; docs/upgrades.md)")
    over = over_max(upgrade)
    lines += [f"pool {s.pool} needs {s.peak_nodes} nodes at the peak, max_nodes is "
              f"{s.max_nodes}: the new cluster waits for capacity there"
              for s in upgrade.pools if s.pool in over]
    return lines
