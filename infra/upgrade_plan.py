"""The upgrade plan: what a change that replaces the Ray cluster needs, as pure functions.

NewCluster starts the whole new cluster beside the old one (the full double). Under
NewClusterWithIncrementalUpgrade KubeRay raises the new cluster's Serve `target_capacity` by
maxSurgePercent, moves traffic stepSizePercent every intervalSeconds until it matches, then
lowers the old cluster's by as much: the peak is the old cluster at the stack's max plus the
new head and one surge of the new cluster's replicas. So the largest surge whose peak fits every
pool's max_nodes is the step servestack derives, and a value the stack writes is checked with
the same arithmetic. `cost` prices `UpgradePlan.pools`' peak nodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.capacity import (
    UNIT,
    CapacityPlan,
    Load,
    ResourceVector,
    WorkerGroupPlan,
    _fields_output,
    _nodes_needed,
    _pods_needed,
    operator_pods,
)
from infra.config import StackConfig
from infra.field_paths import pool_path

INCREMENTAL = "NewClusterWithIncrementalUpgrade"
UPGRADE_OPTIONS_PATH = "rayservice.upgrade"
POD_START_S = 300
"""Assumed seconds from a step's new pods being requested to their replicas running: a node
scale-up, an image pull and a model load. The duration is an estimate on this assumption."""


@dataclass(frozen=True)
class UpgradeStep:
    """One step: the new cluster grows, traffic follows, the old cluster shrinks."""

    new_capacity: int  # the new cluster's target_capacity after this step (percent)
    old_capacity: int  # the old cluster's after it
    traffic_moves: int  # stepSizePercent moves, one per interval, to catch up

    def to_output(self) -> dict[str, Any]:
        return _fields_output(self)


@dataclass(frozen=True)
class PoolSurge:
    """A pool at the upgrade's peak, every deployment of the old cluster at max."""

    pool: str
    extra_pods: int  # the new cluster's pods on this pool at the peak (its head included)
    extra_nodes: int
    extra_gpus: int
    peak_nodes: int
    max_nodes: int

    def to_output(self) -> dict[str, Any]:
        return _fields_output(self)


@dataclass(frozen=True)
class UpgradePlan:
    strategy: str
    max_surge_percent: int | None  # None: not incremental
    step_size_percent: int | None
    interval_seconds: int | None
    steps: tuple[UpgradeStep, ...]
    pools: tuple[PoolSurge, ...]
    estimated_seconds: int

    @property
    def peak_extra_gpus(self) -> int:
        return sum(p.extra_gpus for p in self.pools)

    @property
    def peak_extra_nodes(self) -> int:
        return sum(p.extra_nodes for p in self.pools)

    def to_output(self) -> dict[str, Any]:
        return _fields_output(self)


class UpgradeFitError(ValueError):
    """The pools cannot hold even the smallest step: (field path, message) problems."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))


# --- the arithmetic -------------------------------------------------------------------------


def _replica(group: WorkerGroupPlan, index: int) -> ResourceVector:
    dep = group.deployments[index]
    return ResourceVector(round(dep.num_cpus * UNIT), dep.memory, round(dep.num_gpus * UNIT))


def _surge_pods(group: WorkerGroupPlan, percent: int) -> int:
    """Pods of the new cluster's group at target_capacity `percent` of the stack's max: Serve
    scales each deployment's replicas by the target and rounds up."""
    replicas = [_replica(group, i) for i, dep in enumerate(group.deployments)
                for _ in range(math.ceil(dep.max_replicas * percent / 100))]
    return _pods_needed(replicas, group.ray) if replicas else 0


def _pool_surges(stack: StackConfig, plan: CapacityPlan, percent: int,
                 whole_cluster: bool = False) -> tuple[PoolSurge, ...]:
    """Every pool with the old cluster at max and the new one at `percent` (its head too);
    `whole_cluster`: the new cluster as NewCluster starts it (initial replicas)."""
    found = []
    for pool_plan in plan.pools:
        pool = stack.pool(pool_plan.pool)
        node = ResourceVector.of_node(pool)
        groups = [g for g in plan.worker_groups if g.pool == pool.name]
        system = [plan.head.pod, *operator_pods(stack)] if pool_plan.hosts_head else []
        old = [g.pod for g in groups for _ in range(g.pods(Load.MAX))]
        new = [g.pod for g in groups
               for _ in range(g.pods(Load.INITIAL) if whole_cluster else _surge_pods(g, percent))]
        new_head = [plan.head.pod] if pool_plan.hosts_head else []
        peak = _nodes_needed([*system, *old, *new_head, *new], node) if old or system else 0
        found.append(PoolSurge(
            pool=pool.name, extra_pods=len(new) + len(new_head),
            extra_nodes=max(0, peak - pool_plan.nodes_needed), extra_gpus=sum(
                pod.devices for pod in new), peak_nodes=peak, max_nodes=pool.max_nodes,
        ))
    return tuple(found)


def _fits(surges: Sequence[PoolSurge]) -> bool:
    return all(s.peak_nodes <= s.max_nodes for s in surges)


def largest_fitting_surge(stack: StackConfig, plan: CapacityPlan) -> int | None:
    """The largest maxSurgePercent whose peak fits every pool; None: not even 1 % does."""
    for percent in range(100, 0, -1):
        if _fits(_pool_surges(stack, plan, percent)):
            return percent
    return None


def readiness_interval_s(stack: StackConfig) -> int:
    """Seconds a step's new replicas need to prove healthy before more traffic moves: the
    slowest deployment's health check period plus timeout, or its upscale delay if longer."""
    longest = 0.0
    for app in stack.applications:
        for dep in app.deployments:
            upscale = dep.autoscaling.upscale_delay_s if dep.autoscaling else 0.0
            longest = max(longest, dep.health_check_period_s + dep.health_check_timeout_s,
                          upscale)
    return math.ceil(longest)


def cluster_deletion_delay_s(stack: StackConfig) -> int:
    """Seconds the old cluster outlives the switch: its replicas finish what they hold."""
    if stack.rayservice.cluster_deletion_delay_s is not None:
        return stack.rayservice.cluster_deletion_delay_s
    shutdown = max((dep.graceful_shutdown_timeout_s for app in stack.applications
                    for dep in app.deployments), default=0.0)
    return math.ceil(shutdown + stack.serve.ingress_drain_s)


def _steps(surge: int, step: int) -> tuple[UpgradeStep, ...]:
    steps = []
    new = 0
    while new < 100:
        moved = min(100, new + surge) - new
        new += moved
        steps.append(UpgradeStep(new_capacity=new, old_capacity=100 - new,
                                 traffic_moves=math.ceil(moved / step)))
    return tuple(steps)


def _smallest_step_problems(stack: StackConfig, plan: CapacityPlan) -> list[tuple[str, str]]:
    return [
        (pool_path(s.pool, "max_nodes"),
         f"an incremental upgrade's smallest step (maxSurgePercent 1: {s.extra_pods} new pods "
         f"beside the old cluster at max) needs {s.peak_nodes} nodes; max_nodes is "
         f"{s.max_nodes}: raise it to {s.peak_nodes} (headroom {s.peak_nodes - s.max_nodes} "
         "more nodes) or use upgrade_strategy NewCluster and accept waiting for capacity")
        for s in _pool_surges(stack, plan, 1) if s.peak_nodes > s.max_nodes
    ]


def _written_problems(stack: StackConfig, largest: int, surge: int,
                      step: int) -> list[tuple[str, str]]:
    written = stack.rayservice.upgrade
    problems = []
    if written.max_surge_percent is not None and written.max_surge_percent > largest:
        problems.append((f"{UPGRADE_OPTIONS_PATH}.max_surge_percent",
                         f"{written.max_surge_percent} % of the new cluster beside the old one "
                         f"at max does not fit the pools' max_nodes; at most {largest} does"))
    if step > surge:
        problems.append((f"{UPGRADE_OPTIONS_PATH}.step_size_percent",
                         f"{step} moves more traffic per interval than a step adds capacity "
                         f"({surge}); KubeRay requires stepSizePercent <= maxSurgePercent"))
    return problems


def upgrade_plan(stack: StackConfig, plan: CapacityPlan) -> UpgradePlan:
    """The plan of a cluster-replacing change under the stack's strategy.

    Raises UpgradeFitError when incremental steps do not fit (the pool and the headroom it
    needs) or a written option contradicts the arithmetic.
    """
    strategy = stack.rayservice.upgrade_strategy
    if strategy == "None":
        return UpgradePlan(strategy, None, None, None, (), (), 0)
    if strategy != INCREMENTAL:
        pools = _pool_surges(stack, plan, 100, whole_cluster=True)
        return UpgradePlan(strategy, None, None, None,
                           (UpgradeStep(100, 0, 1),), pools, POD_START_S)
    largest = largest_fitting_surge(stack, plan)
    if largest is None:
        raise UpgradeFitError(_smallest_step_problems(stack, plan))
    written = stack.rayservice.upgrade
    surge = written.max_surge_percent or largest
    step = written.step_size_percent or surge
    problems = _written_problems(stack, largest, surge, step)
    if problems:
        raise UpgradeFitError(problems)
    interval = written.interval_seconds or readiness_interval_s(stack)
    steps = _steps(surge, step)
    seconds = sum(POD_START_S + s.traffic_moves * interval for s in steps)
    return UpgradePlan(strategy, surge, step, interval, steps,
                       _pool_surges(stack, plan, surge), seconds)


def cluster_upgrade_options(stack: StackConfig, upgrade: UpgradePlan) -> dict[str, Any] | None:
    """KubeRay's `clusterUpgradeOptions`, or None outside the incremental strategy."""
    if upgrade.strategy != INCREMENTAL:
        return None
    return {"gatewayClassName": stack.gateway_class, "intervalSeconds": upgrade.interval_seconds,
            "maxSurgePercent": upgrade.max_surge_percent,
            "stepSizePercent": upgrade.step_size_percent}
