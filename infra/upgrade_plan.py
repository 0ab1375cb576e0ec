"""The upgrade plan: what a change that replaces the Ray cluster needs, as pure functions.

NewCluster starts the whole new cluster (initial replicas) beside the old one; both at max is
its worst case. Under NewClusterWithIncrementalUpgrade KubeRay raises the new cluster's Serve
`target_capacity` by maxSurgePercent, moves traffic stepSizePercent every intervalSeconds until
it matches, then lowers the old cluster's by as much, and repeats: before step k lowers it, the
old cluster runs at 100 - (k-1) x surge and the new one at k x surge, with its head. The largest
surge whose every step fits every pool's max_nodes is the one servestack derives, and a value
the stack writes is checked with the same arithmetic. `cost` prices `UpgradePlan.pools`' peak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from decimal import ROUND_HALF_UP, Decimal
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
from infra.config import PROJECT, StackConfig
from infra.field_paths import pool_path
from infra.names import kuberay_gateway_name, serve_service_name

INCREMENTAL = "NewClusterWithIncrementalUpgrade"
UPGRADE_OPTIONS_PATH = "rayservice.upgrade"
UPGRADE_STRATEGY_PATH = "rayservice.upgrade_strategy"
POD_START_S = 300
"""Assumed seconds from a step's new pods being requested to their replicas running: a node
scale-up, an image pull and a model load. The duration is an estimate on this assumption."""
SWITCH_S = 30
"""Assumed seconds from the new cluster's Serve applications being ready to KubeRay switching
the Service to it under NewCluster (a reconcile and the endpoints' update)."""


@dataclass(frozen=True)
class UpgradeStep:
    """One step: the new cluster grows, traffic follows, the old cluster shrinks."""

    new_capacity: int  # the new cluster's target_capacity after this step (percent)
    old_capacity: int  # the old cluster's after it
    traffic_moves: int  # stepSizePercent moves, one per interval, to catch up
    seconds: int  # the step's pods starting, then its traffic moves

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
    double_nodes: int = 0  # nodes with both clusters at max: NewCluster's worst case
    gpu: bool = False  # the pool's nodes carry accelerators

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
    estimated_seconds: int  # both clusters running: the steps, then the deletion delay
    deletion_delay_seconds: int = 0  # of that, the old cluster outliving the switch
    written_options: tuple[str, ...] = ()  # clusterUpgradeOptions the stack wrote, not derived

    @property
    def peak_extra_gpus(self) -> int:
        return sum(p.extra_gpus for p in self.pools)

    @property
    def peak_extra_nodes(self) -> int:
        return sum(p.extra_nodes for p in self.pools)

    @property
    def peak_extra_gpu_nodes(self) -> int:
        return sum(p.extra_nodes for p in self.pools if p.gpu)

    def to_output(self) -> dict[str, Any]:
        return _fields_output(self)

    @classmethod
    def from_output(cls, output: Mapping[str, Any]) -> UpgradePlan:
        """The `upgradePlan` stack output read back, as `diff` finds it in a render."""
        values = {f.name: output[f.name] for f in fields(cls) if f.name in output}
        values["steps"] = tuple(UpgradeStep(**step) for step in output.get("steps") or ())
        values["pools"] = tuple(PoolSurge(**pool) for pool in output.get("pools") or ())
        values["written_options"] = tuple(output.get("written_options") or ())
        return cls(**values)


class UpgradeFitError(ValueError):
    """The pools cannot hold even the smallest step: (field path, message) problems."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))


# --- the arithmetic -------------------------------------------------------------------------


def _replica(group: WorkerGroupPlan, index: int) -> ResourceVector:
    dep = group.deployments[index]
    return ResourceVector(round(dep.num_cpus * UNIT), dep.memory, round(dep.num_gpus * UNIT))


def serve_replicas_at(replicas: int, percent: float) -> int:
    """What Serve keeps of `replicas` at target_capacity `percent`: it rounds half up and
    keeps at least one unless the capacity or the count is 0 (Ray 2.60's
    `ray.serve._private.utils.get_capacity_adjusted_num_replicas`, applied to a fixed
    num_replicas and to an autoscaled deployment's min, initial and max bounds alike).
    Written out so the program need not import Serve; tests hold it to Ray's own."""
    if percent == 100:
        return replicas
    if percent == 0 or replicas == 0:
        return 0
    scaled = Decimal(replicas) * Decimal(str(percent)) / Decimal(100)
    return max(1, int(scaled.to_integral_value(rounding=ROUND_HALF_UP)))


def group_pods_at(group: WorkerGroupPlan, percents: Sequence[float]) -> int:
    """Pods of a group holding every deployment's max_replicas scaled by each of `percents`
    at once (`serve_replicas_at`): one percent for one cluster, two for both generations in
    one Ray (the upgrade rehearsal)."""
    replicas = [_replica(group, i) for i, dep in enumerate(group.deployments)
                for percent in percents
                for _ in range(serve_replicas_at(dep.max_replicas, percent))]
    return _pods_needed(replicas, group.ray) if replicas else 0


def _surge_pods(group: WorkerGroupPlan, percent: int) -> int:
    """Pods of the new cluster's group at target_capacity `percent` of the stack's max."""
    return group_pods_at(group, [percent])


def pool_surges(stack: StackConfig, plan: CapacityPlan, percent: int,
                whole_cluster: bool = False, old_percent: int = 100) -> tuple[PoolSurge, ...]:
    """Every pool with the old cluster at `old_percent` of max and the new one at `percent`
    (its head too); `whole_cluster`: the new cluster as NewCluster starts it (initial
    replicas). Extra pods, nodes and GPUs are counted beyond the old cluster at max."""
    found = []
    for pool_plan in plan.pools:
        pool = stack.pool(pool_plan.pool)
        node = ResourceVector.of_node(pool)
        groups = [g for g in plan.worker_groups if g.pool == pool.name]
        system = [plan.head.pod, *operator_pods(stack)] if pool_plan.hosts_head else []
        at_max = [g.pod for g in groups for _ in range(g.pods(Load.MAX))]
        old = at_max if old_percent == 100 else [
            g.pod for g in groups for _ in range(_surge_pods(g, old_percent))]
        new = [g.pod for g in groups
               for _ in range(g.pods(Load.INITIAL) if whole_cluster else _surge_pods(g, percent))]
        new_head = [plan.head.pod] if pool_plan.hosts_head else []
        peak = _nodes_needed([*system, *old, *new_head, *new], node) if at_max or system else 0
        found.append(PoolSurge(
            pool=pool.name, gpu=node.devices > 0,
            extra_pods=len(old) + len(new) + len(new_head) - len(at_max),
            extra_nodes=max(0, peak - pool_plan.nodes_needed),
            extra_gpus=sum(pod.devices for pod in (*old, *new)) - sum(
                pod.devices for pod in at_max),
            peak_nodes=peak, max_nodes=pool.max_nodes,
        ))
    return tuple(found)


def step_peaks(stack: StackConfig, plan: CapacityPlan, surge: int) -> tuple[PoolSurge, ...]:
    """Each pool at its fullest over KubeRay's steps: before step k lowers the old cluster,
    the old runs at 100 - (k-1) x surge and the new at k x surge (KubeRay 1.7.0's loop:
    scale the pending cluster up, move traffic, scale the active one down). The first step
    holds the most replicas, but Serve's rounding can make a later one need a node more."""
    worst: dict[str, PoolSurge] = {}
    for k in range(1, math.ceil(100 / surge) + 1):
        for pool in pool_surges(stack, plan, min(100, k * surge),
                                old_percent=max(0, 100 - (k - 1) * surge)):
            if pool.pool not in worst or pool.peak_nodes > worst[pool.pool].peak_nodes:
                worst[pool.pool] = pool
    return tuple(worst.values())


def _with_double(stack: StackConfig, plan: CapacityPlan,
                 surges: tuple[PoolSurge, ...]) -> tuple[PoolSurge, ...]:
    """Each pool's nodes if the new cluster reached max before the old one is deleted: what
    NewCluster needs when the load arrives during the switch, and what the steps avoid."""
    double = {s.pool: s.peak_nodes for s in pool_surges(stack, plan, 100)}
    return tuple(replace(s, double_nodes=double[s.pool]) for s in surges)


def _fits(surges: Sequence[PoolSurge]) -> bool:
    return all(s.peak_nodes <= s.max_nodes for s in surges)


def largest_fitting_surge(stack: StackConfig, plan: CapacityPlan) -> int | None:
    """The largest maxSurgePercent whose peak fits every pool; None: not even 1 % does."""
    for percent in range(100, 0, -1):
        if _fits(step_peaks(stack, plan, percent)):
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


def _steps(surge: int, step: int, interval: int) -> tuple[UpgradeStep, ...]:
    steps = []
    new = 0
    while new < 100:
        moved = min(100, new + surge) - new
        new += moved
        moves = math.ceil(moved / step)
        steps.append(UpgradeStep(new_capacity=new, old_capacity=100 - new, traffic_moves=moves,
                                 seconds=POD_START_S + moves * interval))
    return tuple(steps)


def _smallest_step_problems(stack: StackConfig, plan: CapacityPlan) -> list[tuple[str, str]]:
    return [
        (pool_path(s.pool, "max_nodes"),
         f"an incremental upgrade's smallest step (maxSurgePercent 1: {s.extra_pods} pod(s) "
         f"beyond the old cluster at max) needs {s.peak_nodes} nodes; max_nodes is "
         f"{s.max_nodes}: raise it to {s.peak_nodes} (headroom {s.peak_nodes - s.max_nodes} "
         "more node(s)) or use upgrade_strategy NewCluster and accept waiting for capacity")
        for s in step_peaks(stack, plan, 1) if s.peak_nodes > s.max_nodes
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
    delay = cluster_deletion_delay_s(stack)
    if strategy != INCREMENTAL:
        pools = _with_double(stack, plan, pool_surges(stack, plan, 100, whole_cluster=True))
        switch = UpgradeStep(100, 0, 1, POD_START_S + SWITCH_S)
        return UpgradePlan(strategy, None, None, None, (switch,), pools,
                           switch.seconds + delay, delay)
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
    steps = _steps(surge, step, interval)
    pools = _with_double(stack, plan, step_peaks(stack, plan, surge))
    return UpgradePlan(strategy, surge, step, interval, steps, pools,
                       sum(s.seconds for s in steps) + delay, delay, _written_options(stack))


def readable_duration(seconds: float) -> str:
    """Seconds as a person says them: "40 s", "12 min", "1 h 5 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    hours, rest = divmod(minutes, 60)
    return f"{minutes} min" if not hours else f"{hours} h" + (f" {rest} min" if rest else "")


def upgrade_hours(stack: StackConfig, plan: CapacityPlan) -> tuple[float, str]:
    """How long an upgrade runs both clusters, and where that comes from: `cost.upgrade_hours`
    where the stack times its own rollouts, else the upgrade plan's estimate (the full double
    where steps cannot fit, which `validate_stack` refuses anyway)."""
    if stack.cost.upgrade_hours is not None:
        return stack.cost.upgrade_hours, "cost.upgrade_hours"
    try:
        seconds = upgrade_plan(stack, plan).estimated_seconds
    except UpgradeFitError:
        seconds = POD_START_S + SWITCH_S + cluster_deletion_delay_s(stack)
    return round(seconds / 3600, 2), "the upgrade plan's estimate"


CLUSTER_UPGRADE_OPTIONS = {"max_surge_percent": "maxSurgePercent",
                           "step_size_percent": "stepSizePercent",
                           "interval_seconds": "intervalSeconds"}
"""The stack's `rayservice.upgrade` fields and KubeRay's names for them."""


def _written_options(stack: StackConfig) -> tuple[str, ...]:
    written = stack.rayservice.upgrade
    return tuple(kuberay for field, kuberay in CLUSTER_UPGRADE_OPTIONS.items()
                 if getattr(written, field) is not None)


def front_door_warnings(stack: StackConfig) -> list[str]:
    """What KubeRay 1.7.0 does to a front door during an incremental upgrade: it splits
    traffic only on its own Gateway (`reconcileGateway`, `reconcileHTTPRoute`) and keeps the
    Serve Service on the active cluster until promotion, so this stack's HTTPRoute, which
    targets that Service, does not follow the steps."""
    if stack.rayservice.upgrade_strategy != INCREMENTAL or not stack.gateway.enabled:
        return []
    name = stack.rayservice.name
    public = (" That class faces the internet, so KubeRay's Gateway is public over plain HTTP "
              "while it exists." if stack.cluster.gateway_faces_internet(stack.gateway) else "")
    return [
        f"{PROJECT}:{UPGRADE_STRATEGY_PATH} {INCREMENTAL} with {PROJECT}:gateway: during an "
        f"upgrade KubeRay 1.7.0 moves traffic step by step only on its own Gateway "
        f"{kuberay_gateway_name(name)} (one HTTP listener on port 80, class "
        f"{stack.gateway_class}); the front door's HTTPRoute targets "
        f"{serve_service_name(name)}, which KubeRay keeps on the old cluster until it "
        "promotes the new one, so front-door traffic stays on the old cluster while its "
        "target_capacity falls. Send clients through KubeRay's Gateway during upgrades, or "
        "use NewCluster where the pools hold it (docs/upgrades.md, 'The front door')."
        + public
    ]


def cluster_upgrade_options(stack: StackConfig, upgrade: UpgradePlan) -> dict[str, Any] | None:
    """KubeRay's `clusterUpgradeOptions`, or None outside the incremental strategy."""
    if upgrade.strategy != INCREMENTAL:
        return None
    return {"gatewayClassName": stack.gateway_class,
            **{kuberay: getattr(upgrade, field)
               for field, kuberay in CLUSTER_UPGRADE_OPTIONS.items()}}
