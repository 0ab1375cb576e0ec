"""The capacity plan: deployments → worker groups → node pools, as pure functions.

It runs before any Pulumi resource is registered, so a stack that cannot hold its worst case
(every deployment at max_replicas) fails with every problem listed instead of leaving pods
Pending in a half-built cluster. Quantities are integers inside: CPUs and GPUs in 1/10000
(Ray's own resource granularity), memory in bytes, so packing never drifts on floats.
docs/capacity.md states the rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from apps.spec import ApplicationSpec, DeploymentSpec
from infra.config import PROJECT, NodePool, PodResources, StackConfig, Taint

UNIT = 10_000
"""Ray rounds resource quantities to 1/10000; CPUs and GPUs are counted in these units."""
UNITS_PER_MILLI = UNIT // 1000
CPU_GROUP = "cpu"
MAX_GROUP_NAME = 40
"""KubeRay puts groupName into pod names and the 63-character `ray.io/group` label."""


class CapacityError(ValueError):
    """A replica, pod or pool cannot hold the worst case; each problem names where and what fits."""

    def __init__(self, problems: Iterable[tuple[str, str]], stack: str | None = None) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        self.stack = stack
        where = f"stack {stack!r}: " if stack else ""
        lines = "\n".join(f"  {PROJECT}:{path}: {message}" for path, message in self.problems)
        super().__init__(f"{where}capacity plan does not fit:\n{lines}")


@dataclass(frozen=True)
class PodShape:
    """Requests (= limits) of one pod."""

    cpu: float
    memory: int  # bytes
    accelerator_resource: str | None = None
    gpus: int = 0


@dataclass(frozen=True)
class DeploymentPlacement:
    app: str
    deployment: str
    min_replicas: int
    max_replicas: int
    num_cpus: float
    num_gpus: float
    memory: int
    initial_replicas: int  # what a freshly started cluster deploys before it takes traffic
    replicas_per_pod: int  # replicas of this deployment alone that one pod of its group holds

    @property
    def path(self) -> str:
        return f"apps.{self.app}.deployments.{self.deployment}"


@dataclass(frozen=True)
class WorkerGroupPlan:
    """One KubeRay worker group: a resource shape on one pool, sized for its deployments."""

    name: str
    pool: str
    pod: PodShape
    ray_num_cpus: int  # rayStartParams num-cpus (Ray takes whole CPUs): pod cpu - overhead
    ray_num_gpus: int
    min_pods: int
    max_pods: int
    node_selector: dict[str, str]
    tolerations: tuple[Taint, ...]
    deployments: tuple[DeploymentPlacement, ...]
    ray_memory: int  # rayStartParams memory (bytes): pod memory - overhead
    initial_pods: int  # pods holding every deployment's initial replicas
    replicas_per_pod: int  # the pod is sized for this many of the group's largest replica


@dataclass(frozen=True)
class PoolPlan:
    pool: str
    min_nodes: int
    max_nodes: int
    nodes_needed: int  # worst case: every deployment at max replicas
    nodes_needed_during_upgrade: int  # NewCluster: old and new cluster side by side
    gpus_needed: int
    nodes_needed_at_min: int  # every deployment at min replicas: the idle footprint
    worker_groups: tuple[str, ...]
    hosts_head: bool

    @property
    def upgrade_shortfall(self) -> int:
        """Nodes missing for an upgrade surge; 0 when max_nodes covers it."""
        return max(0, self.nodes_needed_during_upgrade - self.max_nodes)


@dataclass(frozen=True)
class CapacityPlan:
    head_pool: str
    worker_groups: tuple[WorkerGroupPlan, ...]
    pools: tuple[PoolPlan, ...]
    stack: str
    upgrade_strategy: str
    head_pod: PodShape  # ray-head container plus the autoscaler sidecar
    head_node_selector: dict[str, str]
    warnings: tuple[str, ...] = field(default=())

    def to_output(self) -> dict[str, Any]:
        """JSON-able form with sorted keys: exported as a stack output and by `plan --json`."""
        return {
            "head": {"node_selector": _sorted(self.head_node_selector),
                     "pod": _pod_output(self.head_pod), "pool": self.head_pool},
            "pools": [_pool_output(pool) for pool in self.pools],
            "stack": self.stack,
            "upgrade_strategy": self.upgrade_strategy,
            "warnings": list(self.warnings),
            "worker_groups": [_group_output(group) for group in self.worker_groups],
        }

    def group(self, name: str) -> WorkerGroupPlan:
        for group in self.worker_groups:
            if group.name == name:
                return group
        raise KeyError(name)

    def pool(self, name: str) -> PoolPlan:
        for pool in self.pools:
            if pool.pool == name:
                return pool
        raise KeyError(name)


# --- the plan ----------------------------------------------------------------------------


def plan_capacity(stack: StackConfig) -> CapacityPlan:
    """Place every deployment, size every worker group and check every pool's worst case.

    Raises CapacityError listing every problem found; a plan that returns fits.
    """
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    rs = stack.rayservice
    overhead = _Need.of_pod(rs.worker_overhead)

    by_shape = _groups_by_shape(stack.applications)
    _check_plain_pool(stack, by_shape.get(_GroupKey(None, None), []), problems)
    groups: list[WorkerGroupPlan] = []
    for key, members in by_shape.items():
        pool = _pool_for_group(stack, key, members, overhead, problems)
        if pool is None:
            continue
        if key.is_cpu and pool.accelerator is not None:
            warnings.append(
                f"worker group {CPU_GROUP} runs CPU replicas on accelerator pool "
                f"{pool.name!r} (rayservice.cpu_pool); they take GPU node capacity"
            )
        group = _plan_group(stack, key, members, pool, overhead, problems)
        if group is not None:
            groups.append(group)

    head_pod = _head_pod(rs.head, rs.autoscaler.resources)
    cpu_group = next((g.pool for g in groups if g.name == CPU_GROUP), rs.cpu_pool)
    head_pool = _head_pool_for(stack, _pod_need(head_pod), cpu_group)
    pools = [_plan_pool(stack, pool, groups, head_pool, head_pod, problems, warnings)
             for pool in stack.pools]
    _check_idle_taints(stack, pools, problems, warnings)
    _check_selectors(stack, pools, warnings)
    if problems:
        raise CapacityError(problems, stack.stack)
    assert head_pool is not None  # a missing head pool is a problem above
    return CapacityPlan(
        head_pool=head_pool.name,
        worker_groups=tuple(groups),
        pools=tuple(pools),
        stack=stack.stack,
        upgrade_strategy=rs.upgrade_strategy,
        head_pod=head_pod,
        head_node_selector=dict(head_pool.labels),
        warnings=tuple(warnings),
    )


# --- grouping by resource shape ----------------------------------------------------------


class _GroupKey(NamedTuple):
    """Deployments share a worker group when they need the same kind of node."""

    accelerator_resource: str | None
    accelerator_type: str | None

    @property
    def is_cpu(self) -> bool:
        return self.accelerator_resource is None

    def sort_key(self) -> tuple[bool, str, str]:
        return (not self.is_cpu, self.accelerator_resource or "", self.accelerator_type or "")


_Member = tuple[ApplicationSpec, DeploymentSpec]


def _groups_by_shape(apps: Iterable[ApplicationSpec]) -> dict[_GroupKey, list[_Member]]:
    groups: dict[_GroupKey, list[_Member]] = {}
    for app in apps:
        for dep in app.deployments:
            res = dep.resources
            key = (_GroupKey(res.accelerator_resource, res.accelerator_type) if res.is_gpu
                   else _GroupKey(None, None))
            groups.setdefault(key, []).append((app, dep))
    return {key: groups[key] for key in sorted(groups, key=_GroupKey.sort_key)}


def group_name(accelerator_resource: str | None, accelerator_type: str | None = None) -> str:
    """KubeRay groupName: `cpu`, or `gpu-<resource>[-<type>]` made DNS-safe, short and stable."""
    if accelerator_resource is None:
        return CPU_GROUP
    words = [accelerator_resource, accelerator_type or ""]
    slug = re.sub(r"[^a-z0-9]+", "-", "-".join(w for w in words if w).lower()).strip("-")
    name = f"gpu-{slug}"
    if len(name) <= MAX_GROUP_NAME:
        return name
    digest = hashlib.sha256("/".join(words).encode()).hexdigest()[:8]
    return f"{name[: MAX_GROUP_NAME - 9].rstrip('-')}-{digest}"


# --- choosing pools ----------------------------------------------------------------------


def _plain_cpu_pools(stack: StackConfig) -> list[NodePool]:
    return [p for p in stack.pools if p.accelerator is None and not p.taints]


def _first_holding(pools: Sequence[NodePool], pods: Iterable[_Need]) -> NodePool | None:
    """The first pool (stack order) whose nodes hold each pod; else the first pool, whose
    too-small nodes the caller then reports."""
    pods = list(pods)
    for pool in pools:
        if all(pod.fits(_Need.of_node(pool)) for pod in pods):
            return pool
    return pools[0] if pools else None


def _check_plain_pool(stack: StackConfig, cpu_members: Sequence[_Member],
                      problems: list[tuple[str, str]]) -> None:
    if _plain_cpu_pools(stack):
        return
    needs = ["the Ray head pod"]
    if cpu_members and stack.rayservice.cpu_pool is None:
        needs.append("the CPU deployments (" + ", ".join(
            f"apps.{app.name}.deployments.{dep.name}" for app, dep in cpu_members) + ")")
    problems.append((
        "pools",
        f"{' and '.join(needs)} need a pool without accelerator and without taints, and there "
        "is none; add one (for example `- {name: cpu, cpu: 4, memory: 16GiB, max_nodes: 2}`)"
        + ("; CPU replicas may also use a tainted pool named in rayservice.cpu_pool"
           if len(needs) > 1 else ""),
    ))


def _head_pool_for(stack: StackConfig, head_pod: _Need, cpu_pool: str | None) -> NodePool | None:
    """Beside the CPU workers when their pool is plain, else the first plain pool that holds it."""
    plain = sorted(_plain_cpu_pools(stack), key=lambda p: p.name != cpu_pool)
    return _first_holding(plain, [head_pod])


def _pool_for_group(
    stack: StackConfig, key: _GroupKey, members: Sequence[_Member], overhead: _Need,
    problems: list[tuple[str, str]],
) -> NodePool | None:
    pods = [_replica_pod(_Need.of_replica(dep), overhead) for _, dep in members]
    if not key.is_cpu:
        return _gpu_pool_for(stack, key, members, pods, problems)
    explicit = stack.rayservice.cpu_pool
    if explicit is None:
        return _first_holding(_plain_cpu_pools(stack), pods)
    for pool in stack.pools:
        if pool.name == explicit:
            return pool
    known = ", ".join(p.name for p in stack.pools)
    problems.append(("rayservice.cpu_pool", f"no pool named {explicit!r}; choose one of: {known}"))
    return None


def _gpu_pool_for(
    stack: StackConfig, key: _GroupKey, members: Sequence[_Member], pods: Sequence[_Need],
    problems: list[tuple[str, str]],
) -> NodePool | None:
    """The first pool that provides the group's accelerator resource (and Ray accelerator type)
    and whose nodes hold each replica's pod."""
    resource, accelerator_type = key
    matching = [
        p for p in stack.pools
        if p.accelerator is not None and p.accelerator.resource == resource
        and (accelerator_type is None or p.accelerator.ray_type == accelerator_type)
    ]
    if matching:
        return _first_holding(matching, pods)
    offered = sorted(
        f"{p.name} ({p.accelerator.resource}"
        + (f", ray_type {p.accelerator.ray_type}" if p.accelerator.ray_type else "") + ")"
        for p in stack.pools if p.accelerator is not None
    )
    wanted = f"resource: {resource}" + (f", ray_type: {accelerator_type}" if accelerator_type
                                        else "")
    kind = f" with accelerator_type {accelerator_type}" if accelerator_type else ""
    for app, dep in members:
        problems.append((
            f"apps.{app.name}.deployments.{dep.name}.resources",
            f"deployment apps.{app.name}.deployments.{dep.name} requests "
            f"{dep.resources.num_gpus:g} {resource}{kind} but no pool provides it "
            f"(accelerator pools: {', '.join(offered) or 'none'}); "
            f"add a pool with accelerator: {{{wanted}}}",
        ))
    return None


# --- sizing one worker group --------------------------------------------------------------


class _Need(NamedTuple):
    """A resource vector: cpu in 1/10000 CPU, memory in bytes, gpu in 1/10000 device
    (for nodes and pods: whole devices times UNIT)."""

    cpu: int
    memory: int
    gpu: int

    @classmethod
    def of_replica(cls, dep: DeploymentSpec) -> _Need:
        res = dep.resources
        return cls(_units(res.num_cpus), int(res.memory), _units(res.num_gpus))

    @classmethod
    def of_pod(cls, pod: PodResources) -> _Need:
        return cls(_milli_up(pod.cpu) * UNITS_PER_MILLI, int(pod.memory), 0)

    @classmethod
    def of_node(cls, pool: NodePool) -> _Need:
        milli = _units(pool.cpu) // UNITS_PER_MILLI  # allocatable rounds down
        return cls(milli * UNITS_PER_MILLI, int(pool.memory), pool.gpus * UNIT)

    def fits(self, room: _Need) -> bool:
        return self.cpu <= room.cpu and self.memory <= room.memory and self.gpu <= room.gpu

    def plus(self, other: _Need) -> _Need:
        return _Need(self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu)

    def minus(self, other: _Need) -> _Need:
        return _Need(self.cpu - other.cpu, self.memory - other.memory, self.gpu - other.gpu)


def _units(quantity: float) -> int:
    return round(quantity * UNIT)


def _milli_up(cpus: float) -> int:
    """Kubernetes expresses CPU in millicores; round a request up to the next one."""
    return _ceil_div(_units(cpus), UNITS_PER_MILLI)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _devices(gpu_units: int) -> int:
    """Whole devices one replica occupies: a fraction shares one device, never spans two."""
    return _ceil_div(gpu_units, UNIT)


def _replica_pod(replica: _Need, overhead: _Need) -> _Need:
    """The smallest pod holding one replica: Ray's num-cpus is a whole number."""
    return _Need(_ceil_div(replica.cpu, UNIT) * UNIT + overhead.cpu,
                 replica.memory + overhead.memory, _devices(replica.gpu) * UNIT)


class _Capacity(NamedTuple):
    """What Ray may schedule in one pod: whole CPUs, memory, whole devices."""

    cpus: int
    memory: int
    gpus: int

    def pod(self, overhead: _Need) -> _Need:
        return _Need(self.cpus * UNIT + overhead.cpu, self.memory + overhead.memory,
                     self.gpus * UNIT)


class _OpenPod:
    """A pod being filled during packing; GPUs are tracked per device like Ray does."""

    def __init__(self, capacity: _Capacity) -> None:
        self.cpu = capacity.cpus * UNIT
        self.memory = capacity.memory
        self.devices = [UNIT] * capacity.gpus

    def take(self, replica: _Need) -> bool:
        if replica.cpu > self.cpu or replica.memory > self.memory:
            return False
        if replica.gpu >= UNIT:
            free = [i for i, left in enumerate(self.devices) if left == UNIT]
            whole = _devices(replica.gpu)
            if len(free) < whole:
                return False
            for i in free[:whole]:
                self.devices[i] = 0
        elif replica.gpu > 0:
            fitting = [i for i, left in enumerate(self.devices) if left >= replica.gpu]
            if not fitting:
                return False
            fullest = min(fitting, key=lambda i: (self.devices[i], i))
            self.devices[fullest] -= replica.gpu
        self.cpu -= replica.cpu
        self.memory -= replica.memory
        return True


def _largest_first(item: _Need) -> tuple[int, int, int]:
    return (item.gpu, item.cpu, item.memory)


def _pods_needed(replicas: Iterable[_Need], capacity: _Capacity) -> int:
    """First-fit decreasing: a placement of `replicas` into this many pods exists."""
    pods: list[_OpenPod] = []
    for replica in sorted(replicas, key=_largest_first, reverse=True):
        if not any(pod.take(replica) for pod in pods):
            pod = _OpenPod(capacity)
            if not pod.take(replica):
                raise ValueError(f"replica {replica} is larger than pod capacity {capacity}")
            pods.append(pod)
    return len(pods)


def _nodes_needed(pods: Iterable[_Need], node: _Need) -> int:
    """First-fit decreasing of pods onto identical nodes."""
    free: list[_Need] = []
    for pod in sorted(pods, key=_largest_first, reverse=True):
        for i, room in enumerate(free):
            if pod.fits(room):
                free[i] = room.minus(pod)
                break
        else:
            if not pod.fits(node):
                raise ValueError(f"pod {pod} is larger than node {node}")
            free.append(node.minus(pod))
    return len(free)


def _replicas(members: Sequence[_Member], count: str) -> list[_Need]:
    out: list[_Need] = []
    for _, dep in members:
        n = {"max": dep.max_replicas, "min": dep.min_replicas, "initial": _initial(dep)}[count]
        out.extend([_Need.of_replica(dep)] * n)
    return out


def _initial(dep: DeploymentSpec) -> int:
    scaling = dep.autoscaling
    if scaling is None:
        return dep.max_replicas
    initial = scaling.initial_replicas
    return initial if initial is not None else scaling.min_replicas


def _capacity_for(k: int, unit: _Need, overhead: _Need, node: _Need) -> _Capacity:
    """A pod for k of the largest replica, cut down to what one node leaves after overhead."""
    room = _Need(node.cpu - overhead.cpu, node.memory - overhead.memory, node.gpu)
    if unit.gpu == 0:
        devices = 0
    elif unit.gpu >= UNIT:
        devices = k * _devices(unit.gpu)
    else:
        devices = _ceil_div(k, UNIT // unit.gpu)  # a device holds UNIT // gpu fractions
    return _Capacity(
        cpus=min(_ceil_div(k * unit.cpu, UNIT), room.cpu // UNIT),
        memory=min(k * unit.memory, room.memory),
        gpus=min(devices, room.gpu // UNIT),
    )


@dataclass(frozen=True)
class _Sizing:
    replicas_per_pod: int
    capacity: _Capacity
    max_pods: int


def _size_group(members: Sequence[_Member], overhead: _Need, node: _Need,
                max_replicas_per_pod: int) -> _Sizing:
    """Pick the pod size (k of the largest replica, k ≤ max_replicas_per_pod) that needs the
    fewest nodes for the worst case, then the fewest at min replicas, then fewer pods; ties go
    to the smaller pod, which scales in finer steps."""
    replicas = [_Need.of_replica(dep) for _, dep in members]
    unit = _Need(*(max(values) for values in zip(*replicas, strict=True)))
    at_max, at_min = _replicas(members, "max"), _replicas(members, "min")
    best: tuple[tuple[int, int, int, int], _Sizing] | None = None
    seen: set[_Capacity] = set()
    for k in range(1, min(max_replicas_per_pod, len(at_max)) + 1):
        capacity = _capacity_for(k, unit, overhead, node)
        if capacity in seen:
            continue
        seen.add(capacity)
        pod = capacity.pod(overhead)
        per_node = _pods_per_node(pod, node)
        max_pods = _pods_needed(at_max, capacity)
        min_pods = _pods_needed(at_min, capacity)
        score = (_ceil_div(max_pods, per_node), _ceil_div(min_pods, per_node), max_pods, k)
        if best is None or score < best[0]:
            best = (score, _Sizing(k, capacity, max_pods))
    assert best is not None
    return best[1]


def _pods_per_node(pod: _Need, node: _Need) -> int:
    """Identical pods per node; a pod always takes CPU (worker_overhead.cpu > 0)."""
    counts = [room // need for room, need in zip(node, pod, strict=True) if need]
    return min(counts)


def _plan_group(
    stack: StackConfig, key: _GroupKey, members: Sequence[_Member], pool: NodePool,
    overhead: _Need, problems: list[tuple[str, str]],
) -> WorkerGroupPlan | None:
    node = _Need.of_node(pool)
    fitting = []
    for app, dep in members:
        replica = _Need.of_replica(dep)
        if _replica_pod(replica, overhead).fits(node):
            fitting.append((app, dep))
        else:
            problems.append((f"apps.{app.name}.deployments.{dep.name}.resources",
                             _too_large(replica, overhead, pool, key)))
    if not fitting:
        return None
    # The rest are still sized, so the pool checks report their problems in the same run.
    sizing = _size_group(fitting, overhead, node, stack.rayservice.max_replicas_per_pod)
    capacity = sizing.capacity
    pod = capacity.pod(overhead)
    name = group_name(key.accelerator_resource, key.accelerator_type)
    placements = tuple(
        DeploymentPlacement(
            app=app.name, deployment=dep.name,
            min_replicas=dep.min_replicas, max_replicas=dep.max_replicas,
            num_cpus=dep.resources.num_cpus, num_gpus=dep.resources.num_gpus,
            memory=int(dep.resources.memory), initial_replicas=_initial(dep),
            replicas_per_pod=_fit_count(_Need.of_replica(dep), capacity, sizing.replicas_per_pod),
        )
        for app, dep in fitting
    )
    return WorkerGroupPlan(
        name=name,
        pool=pool.name,
        pod=PodShape(cpu=pod.cpu / UNIT, memory=pod.memory,
                     accelerator_resource=key.accelerator_resource if capacity.gpus else None,
                     gpus=capacity.gpus),
        ray_num_cpus=capacity.cpus,
        ray_num_gpus=capacity.gpus,
        min_pods=_pods_needed(_replicas(fitting, "min"), capacity),
        max_pods=sizing.max_pods,
        node_selector=dict(pool.labels),
        tolerations=tuple(pool.taints),
        deployments=placements,
        ray_memory=capacity.memory,
        initial_pods=_pods_needed(_replicas(fitting, "initial"), capacity),
        replicas_per_pod=sizing.replicas_per_pod,
    )


def _fit_count(replica: _Need, capacity: _Capacity, design: int) -> int:
    """How many of one replica a single pod takes; a fraction of a GPU never spans devices."""
    counts = []
    if replica.cpu:
        counts.append(capacity.cpus * UNIT // replica.cpu)
    if replica.memory:
        counts.append(capacity.memory // replica.memory)
    if replica.gpu >= UNIT:
        counts.append(capacity.gpus // _devices(replica.gpu))
    elif replica.gpu:
        counts.append(capacity.gpus * (UNIT // replica.gpu))
    return min(counts) if counts else design


# --- pools --------------------------------------------------------------------------------


def _head_pod(head: PodResources, autoscaler: PodResources) -> PodShape:
    need = _Need.of_pod(head).plus(_Need.of_pod(autoscaler))
    return PodShape(cpu=need.cpu / UNIT, memory=need.memory)


def _pod_need(pod: PodShape) -> _Need:
    return _Need(round(pod.cpu * UNIT), pod.memory, pod.gpus * UNIT)


def _plan_pool(
    stack: StackConfig, pool: NodePool, groups: Sequence[WorkerGroupPlan],
    head_pool: NodePool | None, head_pod: PodShape,
    problems: list[tuple[str, str]], warnings: list[str],
) -> PoolPlan:
    node = _Need.of_node(pool)
    here = [g for g in groups if g.pool == pool.name]
    hosts_head = head_pool is not None and head_pool.name == pool.name
    system: list[_Need] = []  # per Ray cluster: doubled while an upgrade runs two clusters
    shared: list[_Need] = []  # the operator serves both clusters
    if hosts_head:
        head = _pod_need(head_pod)
        operator = _Need.of_pod(stack.kuberay.resources)
        if _fits_pool(head, "rayservice.head", "the head pod (rayservice.head plus the "
                      "autoscaler sidecar, rayservice.autoscaler.resources)", pool, problems):
            system.append(head)
        if _fits_pool(operator, "kuberay.resources", "the KubeRay operator pod", pool, problems):
            shared.append(operator)

    def pods(count: str) -> list[_Need]:
        out: list[_Need] = []
        for g in here:
            n = {"max": g.max_pods, "min": g.min_pods, "initial": g.initial_pods}[count]
            out.extend([_pod_need(g.pod)] * n)
        return out

    worst = _nodes_needed([*system, *shared, *pods("max")], node)
    at_min = _nodes_needed([*system, *shared, *pods("min")], node)
    surge = {
        "None": [],
        "NewCluster": [*system, *pods("initial")],
        "NewClusterWithIncrementalUpgrade": [*system, *pods("max")],
    }[stack.rayservice.upgrade_strategy]
    during_upgrade = _nodes_needed([*system, *shared, *pods("max"), *surge], node)
    plan = PoolPlan(
        pool=pool.name, min_nodes=pool.min_nodes, max_nodes=pool.max_nodes,
        nodes_needed=worst, nodes_needed_during_upgrade=during_upgrade,
        gpus_needed=sum(g.pod.gpus * g.max_pods for g in here),
        nodes_needed_at_min=at_min, worker_groups=tuple(g.name for g in here),
        hosts_head=hosts_head,
    )
    if worst > pool.max_nodes:
        problems.append((
            f"pools[{pool.name}].max_nodes",
            f"the worst case (every deployment at max_replicas) needs {worst} nodes for "
            f"{_contents(here, hosts_head)}; max_nodes is {pool.max_nodes}; raise "
            f"max_nodes to {worst} or lower the deployments' max_replicas",
        ))
    elif plan.upgrade_shortfall:
        warnings.append(
            f"pools[{pool.name}]: a {stack.rayservice.upgrade_strategy} upgrade runs the new "
            f"Ray cluster beside the old one and needs {during_upgrade} nodes; max_nodes is "
            f"{pool.max_nodes}, {plan.upgrade_shortfall} short, so the new cluster waits for "
            f"capacity. Raise max_nodes to {during_upgrade} to upgrade at peak load"
        )
    return plan


def _fits_pool(need: _Need, path: str, what: str, pool: NodePool,
               problems: list[tuple[str, str]]) -> bool:
    node = _Need.of_node(pool)
    if need.fits(node):
        return True
    problems.append((path, f"{what} needs {_describe(need)} but a node of pool {pool.name!r} "
                           f"has allocatable {_describe(node)}; lower it or give "
                           f"pools[{pool.name}] larger nodes (cpu, memory)"))
    return False


def _check_idle_taints(stack: StackConfig, pools: Sequence[PoolPlan],
                       problems: list[tuple[str, str]], warnings: list[str]) -> None:
    """Tolerations are derived from the taints of the pool a group lands on, so a taint is
    tolerated by nothing exactly when no worker group lands on its pool."""
    for plan in pools:
        pool = stack.pool(plan.pool)
        if not pool.taints or plan.worker_groups:
            continue
        taints = ", ".join(f"{t.key}={t.value}:{t.effect}" for t in pool.taints)
        if pool.min_nodes > 0:
            problems.append((
                f"pools[{pool.name}].taints",
                f"no worker group lands on this pool, so nothing tolerates its taints ({taints}) "
                f"and its min_nodes ({pool.min_nodes}) would sit idle; set min_nodes: 0, "
                "remove the pool, or point deployments at it (matching accelerator, or "
                "rayservice.cpu_pool for CPU replicas)",
            ))
        else:
            warnings.append(f"pools[{pool.name}] is tainted ({taints}) and no worker group "
                            "lands on it; it stays at 0 nodes")


def _check_selectors(stack: StackConfig, pools: Sequence[PoolPlan], warnings: list[str]) -> None:
    if len(stack.pools) < 2:
        return
    for plan in pools:
        if (plan.worker_groups or plan.hosts_head) and not stack.pool(plan.pool).labels:
            warnings.append(
                f"pools[{plan.pool}] has no labels, so pods placed on it get no nodeSelector "
                "and may land on any other pool whose taints they tolerate; add labels "
                f"(e.g. servestack.io/pool: {plan.pool})"
            )


# --- messages and output ------------------------------------------------------------------


def _gib(size: int) -> str:
    return f"{size / 1024**3:.3g}GiB"


def _describe(need: _Need, resource: str | None = None) -> str:
    text = f"{need.cpu / UNIT:g} CPU, {_gib(need.memory)}"
    if need.gpu:
        text += f", {need.gpu / UNIT:g} {resource or 'GPU'}"
    return text


def _too_large(replica: _Need, overhead: _Need, pool: NodePool, key: _GroupKey) -> str:
    pod = _replica_pod(replica, overhead)
    node = _Need.of_node(pool)
    resource = key.accelerator_resource
    whole = "" if replica.cpu % UNIT == 0 else (
        f" (Ray counts a pod's CPUs in whole numbers: {_ceil_div(replica.cpu, UNIT)})")
    return (
        f"one replica needs {_describe(replica, resource)}{whole}; with "
        f"rayservice.worker_overhead ({_describe(overhead)}) its pod needs "
        f"{_describe(pod, resource)}, but a node of pool "
        f"{pool.name!r} has allocatable {_describe(node, resource)}; lower this deployment's "
        f"resources or give pools[{pool.name}] larger nodes (cpu, memory"
        + (", accelerator.count)" if resource else ")")
    )


def _contents(groups: Sequence[WorkerGroupPlan], head: bool) -> str:
    parts = ["the head pod and the KubeRay operator"] if head else []
    parts += [f"{g.max_pods} pods of worker group {g.name} "
              f"({g.pod.cpu:g} CPU, {_gib(g.pod.memory)}"
              + (f", {g.pod.gpus} {g.pod.accelerator_resource}" if g.pod.gpus else "") + ")"
              for g in groups]
    return ", ".join(parts) or "nothing"


def _sorted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: mapping[key] for key in sorted(mapping)}


def _pod_output(pod: PodShape) -> dict[str, Any]:
    return {"accelerator_resource": pod.accelerator_resource, "cpu": pod.cpu,
            "gpus": pod.gpus, "memory": pod.memory}


def _group_output(group: WorkerGroupPlan) -> dict[str, Any]:
    return {
        "deployments": [
            {"app": d.app, "deployment": d.deployment, "initial_replicas": d.initial_replicas,
             "max_replicas": d.max_replicas, "memory": d.memory, "min_replicas": d.min_replicas,
             "num_cpus": d.num_cpus, "num_gpus": d.num_gpus,
             "replicas_per_pod": d.replicas_per_pod}
            for d in group.deployments
        ],
        "initial_pods": group.initial_pods,
        "max_pods": group.max_pods,
        "min_pods": group.min_pods,
        "name": group.name,
        "node_selector": _sorted(group.node_selector),
        "pod": _pod_output(group.pod),
        "pool": group.pool,
        "ray_memory": group.ray_memory,
        "ray_num_cpus": group.ray_num_cpus,
        "ray_num_gpus": group.ray_num_gpus,
        "replicas_per_pod": group.replicas_per_pod,
        "tolerations": [_sorted(t.model_dump(mode="json")) for t in group.tolerations],
    }


def _pool_output(pool: PoolPlan) -> dict[str, Any]:
    return {
        "gpus_needed": pool.gpus_needed,
        "hosts_head": pool.hosts_head,
        "max_nodes": pool.max_nodes,
        "min_nodes": pool.min_nodes,
        "nodes_needed": pool.nodes_needed,
        "nodes_needed_at_min": pool.nodes_needed_at_min,
        "nodes_needed_during_upgrade": pool.nodes_needed_during_upgrade,
        "pool": pool.pool,
        "upgrade_shortfall": pool.upgrade_shortfall,
        "worker_groups": list(pool.worker_groups),
    }
