"""The capacity plan: deployments → worker groups → node pools, as pure functions.

It runs before any Pulumi resource is registered, so a stack that cannot hold its worst case
(every deployment at max_replicas) fails with every problem listed instead of leaving pods
Pending in a half-built cluster: each check returns its problems and `plan_capacity` raises
them together. Every amount (a replica's need, a pod, Ray's share of a pod, a node) is one
`ResourceVector` of integers: CPUs and GPUs in 1/10000 (Ray's own resource granularity), memory
in bytes, so packing never drifts on floats. The `capacityPlan` output is built from the plan's
dataclass fields, so it cannot drift from what the program builds. docs/capacity.md states the
rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel

from apps.spec import ApplicationSpec, DeploymentSpec, Resources
from infra.config import PROJECT, NodePool, PodResources, StackConfig, Taint
from infra.field_paths import deployment_path, pool_path
from infra.quantities import gib

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

UNIT = 10_000
"""Ray rounds resource quantities to 1/10000; CPUs and GPUs are counted in these units."""
UNITS_PER_MILLI = UNIT // 1000
CPU_GROUP = "cpu"
MAX_GROUP_NAME = 40
"""KubeRay puts groupName into pod names and the 63-character `ray.io/group` label."""


class Problem(NamedTuple):
    """One reason the plan does not fit: the `servestack:` config key and what to change."""

    path: str
    message: str


class CapacityError(ValueError):
    """A replica, pod or pool cannot hold the worst case; each problem names where and what fits."""

    def __init__(self, problems: Iterable[tuple[str, str]], stack: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(Problem(*problem) for problem in problems)
        self.stack = stack
        where = f"stack {stack!r}: " if stack else ""
        lines = "\n".join(f"  {PROJECT}:{path}: {message}" for path, message in self.problems)
        super().__init__(f"{where}capacity plan does not fit:\n{lines}")


class Load(Enum):
    """The replica counts a plan is sized for, in the order `servestack plan` prints them."""

    MIN = "min"  # every deployment at min_replicas: the idle footprint
    INITIAL = "initial"  # what a freshly started cluster deploys before it takes traffic
    MAX = "max"  # the worst case, which every pool must hold

    def pick(self, at_min: int, at_initial: int, at_max: int) -> int:
        """This load's count, of the three every deployment, placement and group carries."""
        return {Load.MIN: at_min, Load.INITIAL: at_initial, Load.MAX: at_max}[self]

    def replicas(self, dep: DeploymentSpec) -> int:
        return self.pick(dep.min_replicas, dep.initial_replicas, dep.max_replicas)


# --- the resource vector ----------------------------------------------------------------


@dataclass(frozen=True)
class ResourceVector:
    """What a replica needs, a pod reserves, Ray may schedule in a pod, or a node offers.

    `cpu` and `gpu` count 1/10000 of a CPU or device (pods and nodes hold whole devices, so
    their `gpu` is a multiple of UNIT), `memory` counts bytes.
    """

    cpu: int = 0
    memory: int = 0
    gpu: int = 0

    @classmethod
    def of_replica(cls, resources: Resources) -> ResourceVector:
        return cls(_units(resources.num_cpus), int(resources.memory), _units(resources.num_gpus))

    @classmethod
    def of_pod(cls, pod: PodResources) -> ResourceVector:
        """A container's requests: Kubernetes rounds CPU up to the next millicore."""
        return cls(_ceil_div(_units(pod.cpu), UNITS_PER_MILLI) * UNITS_PER_MILLI, int(pod.memory))

    @classmethod
    def of_node(cls, pool: NodePool) -> ResourceVector:
        """One node's allocatable: CPU rounds down to a millicore, GPUs are whole devices."""
        milli = _units(pool.cpu) // UNITS_PER_MILLI
        return cls(milli * UNITS_PER_MILLI, int(pool.memory), pool.gpus * UNIT)

    @classmethod
    def whole(cls, cpus: int, memory: int, devices: int) -> ResourceVector:
        """Whole CPUs and devices: what `ray start --num-cpus/--num-gpus` can express."""
        return cls(cpus * UNIT, memory, devices * UNIT)

    @property
    def cpus(self) -> float:
        return self.cpu / UNIT

    @property
    def gpus(self) -> float:
        return self.gpu / UNIT

    @property
    def whole_cpus(self) -> int:
        """CPUs rounded up: Ray counts a pod's CPUs in whole numbers."""
        return _ceil_div(self.cpu, UNIT)

    @property
    def devices(self) -> int:
        """Whole devices: a fraction of a GPU shares one device and never spans two."""
        return _ceil_div(self.gpu, UNIT)

    @property
    def is_empty(self) -> bool:
        return self == ResourceVector()

    def __add__(self, other: ResourceVector) -> ResourceVector:
        return ResourceVector(self.cpu + other.cpu, self.memory + other.memory,
                              self.gpu + other.gpu)

    def __sub__(self, other: ResourceVector) -> ResourceVector:
        return ResourceVector(self.cpu - other.cpu, self.memory - other.memory,
                              self.gpu - other.gpu)

    def __mul__(self, times: int) -> ResourceVector:
        return ResourceVector(self.cpu * times, self.memory * times, self.gpu * times)

    def lacking(self, room: ResourceVector) -> tuple[str, ...]:
        """The dimensions (`cpu`, `memory`, `gpu`) in which this needs more than `room` has."""
        return tuple(name for name, need, has in (("cpu", self.cpu, room.cpu),
                                                  ("memory", self.memory, room.memory),
                                                  ("gpu", self.gpu, room.gpu))
                     if need > has)

    def fits(self, room: ResourceVector) -> bool:
        return not self.lacking(room)

    def count_in(self, room: ResourceVector) -> int:
        """How many of this one `room` holds side by side; a GPU fraction never spans devices.

        An empty vector fits any number of times: callers decide what that means."""
        counts = [room.cpu // self.cpu] if self.cpu else []
        if self.memory:
            counts.append(room.memory // self.memory)
        if self.gpu >= UNIT:
            counts.append(room.gpu // UNIT // self.devices)
        elif self.gpu:
            counts.append(room.gpu // UNIT * (UNIT // self.gpu))  # a device holds UNIT // gpu
        if not counts:
            raise ValueError("an empty resource vector fits any number of times")
        return min(counts)

    def describe(self, resource: str | None = None) -> str:
        """For messages: `1.5 CPU, 4GiB[, 1 nvidia.com/gpu]`."""
        text = f"{self.cpus:g} CPU, {gib(self.memory)}"
        if self.gpu:
            text += f", {self.gpus:g} {resource or 'GPU'}"
        return text

    def to_output(self, accelerator_resource: str | None = None) -> dict[str, Any]:
        """As a pod's shape in the plan output: CPUs as a number, GPUs as whole devices."""
        return {"accelerator_resource": accelerator_resource if self.gpu else None,
                "cpu": self.cpus, "gpus": self.devices, "memory": self.memory}


def _units(quantity: float) -> int:
    return round(quantity * UNIT)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --- the plan's types ---------------------------------------------------------------------


@runtime_checkable
class _Outputs(Protocol):
    def to_output(self) -> dict[str, Any]: ...


def _output(value: Any) -> Any:
    """JSON-able form: plan types by their own `to_output`, mappings with sorted keys."""
    if isinstance(value, _Outputs):
        return value.to_output()
    if isinstance(value, BaseModel):
        return _output(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {key: _output(value[key]) for key in sorted(value)}
    if isinstance(value, tuple | list):
        return [_output(item) for item in value]
    return value


def _fields_output(plan: DataclassInstance, omit: Iterable[str] = (),
                   **derived: Any) -> dict[str, Any]:
    """A plan dataclass's fields (less `omit`) plus `derived` values, keys sorted."""
    skipped = set(omit)
    values = {f.name: getattr(plan, f.name) for f in fields(plan) if f.name not in skipped}
    return {key: _output(value) for key, value in sorted({**values, **derived}.items())}


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
        return deployment_path(self.app, self.deployment)

    def replicas(self, load: Load) -> int:
        return load.pick(self.min_replicas, self.initial_replicas, self.max_replicas)

    def to_output(self) -> dict[str, Any]:
        return _fields_output(self)


@dataclass(frozen=True)
class WorkerGroupPlan:
    """One KubeRay worker group: a resource shape on one pool; one pod per node of it, as many
    pods as its deployments need."""

    name: str
    pool: str
    ray: ResourceVector  # rayStartParams num-cpus/memory/num-gpus: whole CPUs and devices
    overhead: ResourceVector  # rayservice.worker_overhead: raylet, agents, object store
    object_store_memory: int  # rayservice.object_store_memory: Ray's store, out of overhead
    accelerator_resource: str | None  # the extended resource of the pod's GPUs; None: no GPUs
    min_pods: int
    initial_pods: int  # pods holding every deployment's initial replicas
    max_pods: int
    node_selector: dict[str, str]
    tolerations: tuple[Taint, ...]
    deployments: tuple[DeploymentPlacement, ...]

    @property
    def pod(self) -> ResourceVector:
        """Requests (= limits) of one pod: Ray's share plus the overhead."""
        return self.ray + self.overhead

    def pods(self, load: Load) -> int:
        return load.pick(self.min_pods, self.initial_pods, self.max_pods)

    def to_output(self) -> dict[str, Any]:
        return _fields_output(
            self, omit=("accelerator_resource", "overhead", "ray"),
            pod=self.pod.to_output(self.accelerator_resource),
            ray_memory=self.ray.memory, ray_num_cpus=self.ray.whole_cpus,
            ray_num_gpus=self.ray.devices,
        )


@dataclass(frozen=True)
class HeadPlan:
    """The Ray head pod: ray-head container plus the autoscaler sidecar, on a plain pool
    (no accelerator, no taints), so it needs no tolerations."""

    pool: str
    pod: ResourceVector
    node_selector: dict[str, str]

    def to_output(self) -> dict[str, Any]:
        return _fields_output(self)


@dataclass(frozen=True)
class PoolPlan:
    pool: str
    min_nodes: int
    max_nodes: int
    nodes_needed: int  # worst case: every deployment at max replicas
    nodes_needed_during_upgrade: int  # NewCluster: old and new cluster side by side
    gpus_needed: int
    nodes_needed_at_min: int  # every deployment at min replicas: the idle footprint
    nodes_needed_at_initial: int  # what a freshly started cluster deploys
    worker_groups: tuple[str, ...]
    hosts_head: bool
    accelerator: str | None = None  # Accelerator.label of the pool's devices; None: no GPUs

    def nodes(self, load: Load) -> int:
        """Nodes the pool's pods need at `load` (the autoscaler keeps min_nodes anyway)."""
        return load.pick(self.nodes_needed_at_min, self.nodes_needed_at_initial,
                         self.nodes_needed)

    @property
    def upgrade_shortfall(self) -> int:
        """Nodes missing for an upgrade surge; 0 when max_nodes covers it."""
        return max(0, self.nodes_needed_during_upgrade - self.max_nodes)

    def to_output(self) -> dict[str, Any]:
        return _fields_output(self, upgrade_shortfall=self.upgrade_shortfall)


@dataclass(frozen=True)
class CapacityPlan:
    head: HeadPlan
    worker_groups: tuple[WorkerGroupPlan, ...]
    pools: tuple[PoolPlan, ...]
    stack: str
    upgrade_strategy: str
    warnings: tuple[str, ...] = ()

    def to_output(self) -> dict[str, Any]:
        """JSON-able form with sorted keys: exported as a stack output and by `plan --json`."""
        return _fields_output(self)

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
    rs = stack.rayservice
    overhead = ResourceVector.of_pod(rs.worker_overhead)
    by_shape = _groups_by_shape(stack.applications)
    problems = _plain_pool_problems(stack, by_shape.get(_CPU_KEY, []))
    warnings: list[str] = []
    placed: list[tuple[_GroupKey, list[_Member], NodePool]] = []
    for key, members in by_shape.items():
        pool, found = _pool_for_group(stack, key, members, overhead)
        problems += found
        if pool is None:
            continue
        if key.is_cpu and pool.accelerator is not None:
            warnings.append(
                f"worker group {CPU_GROUP} runs CPU replicas on accelerator pool "
                f"{pool.name!r} (rayservice.cpu_pool); they take GPU node capacity"
            )
        fitting, found = _fitting_members(key, members, pool, overhead)
        problems += found
        # The rest are still sized, so the pool checks report their problems in the same run.
        if fitting:
            placed.append((key, fitting, pool))

    head_pod = ResourceVector.of_pod(rs.head) + ResourceVector.of_pod(rs.autoscaler.resources)
    cpu_group = next((pool.name for key, _, pool in placed if key.is_cpu), rs.cpu_pool)
    head_pool = _head_pool_for(stack, head_pod, cpu_group)
    groups = [_plan_group(stack, key, fitting, pool, overhead,
                          _system_pods(stack, pool, head_pool, head_pod))
              for key, fitting, pool in placed]
    pools = [_plan_pool(stack, pool, groups, head_pool, head_pod) for pool in stack.pools]
    for pool, plan in zip(stack.pools, pools, strict=True):
        if plan.hosts_head:
            problems += _system_pod_problems(stack, pool, head_pod)
        problems += _worst_case_problems(plan, groups)
        problems += _model_cache_problems(stack, pool, groups)
        warnings += _upgrade_warnings(stack, plan)
    idle = list(_idle_tainted_pools(stack, pools))
    problems += [_idle_taint_problem(pool, taints) for pool, taints in idle if pool.min_nodes]
    warnings += [f"{pool_path(pool.name)} is tainted ({taints}) and no worker group lands on it; "
                 "it stays at 0 nodes" for pool, taints in idle if not pool.min_nodes]
    warnings += _selector_warnings(stack, pools)
    if problems:
        raise CapacityError(problems, stack.stack)
    assert head_pool is not None  # a missing head pool is a problem above
    return _with_incremental_peaks(stack, CapacityPlan(
        head=HeadPlan(pool=head_pool.name, pod=head_pod, node_selector=dict(head_pool.labels)),
        worker_groups=tuple(groups),
        pools=tuple(pools),
        stack=stack.stack,
        upgrade_strategy=rs.upgrade_strategy,
        warnings=tuple(warnings),
    ))


def _with_incremental_peaks(stack: StackConfig, plan: CapacityPlan) -> CapacityPlan:
    """Under the incremental strategy a pool's nodes during an upgrade are the upgrade
    plan's peak (old cluster at max plus one surge), not a second cluster at max. The step
    sizing needs the finished plan, hence the late import; a stack whose steps do not fit
    keeps the double here and is refused by `validate_stack` with the upgrade's problems."""
    if stack.rayservice.upgrade_strategy != "NewClusterWithIncrementalUpgrade":
        return plan
    from infra.upgrade_plan import UpgradeFitError, upgrade_plan

    try:
        peaks = {surge.pool: surge.peak_nodes for surge in upgrade_plan(stack, plan).pools}
    except UpgradeFitError:
        return plan
    pools = tuple(replace(pool, nodes_needed_during_upgrade=max(
        pool.nodes_needed, peaks.get(pool.pool, pool.nodes_needed))) for pool in plan.pools)
    return replace(plan, pools=pools)


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


_CPU_KEY = _GroupKey(None, None)
_Member = tuple[ApplicationSpec, DeploymentSpec]


def _group_key(dep: DeploymentSpec) -> _GroupKey:
    res = dep.resources
    return _GroupKey(res.accelerator_resource, res.accelerator_type) if res.is_gpu else _CPU_KEY


def _groups_by_shape(apps: Iterable[ApplicationSpec]) -> dict[_GroupKey, list[_Member]]:
    groups: dict[_GroupKey, list[_Member]] = {}
    for app in apps:
        for dep in app.deployments:
            groups.setdefault(_group_key(dep), []).append((app, dep))
    return {key: groups[key] for key in sorted(groups, key=_GroupKey.sort_key)}


def worker_group_of(dep: DeploymentSpec) -> str:
    """The worker group the plan puts a deployment's replicas in: one per resource shape. The
    Serve config's label selector names it too, so Ray keeps the replicas there."""
    key = _group_key(dep)
    return group_name(key.accelerator_resource, key.accelerator_type)


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


def _first_holding(pools: Sequence[NodePool], pods: Iterable[ResourceVector]) -> NodePool | None:
    """The first pool (stack order) whose nodes hold each pod; else the first pool, whose
    too-small nodes the caller then reports."""
    pods = list(pods)
    for pool in pools:
        node = ResourceVector.of_node(pool)
        if all(pod.fits(node) for pod in pods):
            return pool
    return pools[0] if pools else None


def _plain_pool_problems(stack: StackConfig, cpu_members: Sequence[_Member]) -> list[Problem]:
    if _plain_cpu_pools(stack):
        return []
    needs = ["the Ray head pod"]
    if cpu_members and stack.rayservice.cpu_pool is None:
        needs.append("the CPU deployments (" + ", ".join(
            deployment_path(app.name, dep.name) for app, dep in cpu_members) + ")")
    return [Problem(
        "pools",
        f"{' and '.join(needs)} need a pool without accelerator and without taints, and there "
        "is none; add one (for example `- {name: cpu, cpu: 4, memory: 16GiB, max_nodes: 2}`)"
        + ("; CPU replicas may also use a tainted pool named in rayservice.cpu_pool"
           if len(needs) > 1 else ""),
    )]


def _head_pool_for(stack: StackConfig, head_pod: ResourceVector,
                   cpu_pool: str | None) -> NodePool | None:
    """Beside the CPU workers when their pool is plain, else the first plain pool that holds it.
    Only plain pools qualify, so the head never needs a toleration."""
    plain = sorted(_plain_cpu_pools(stack), key=lambda p: p.name != cpu_pool)
    return _first_holding(plain, [head_pod])


def _pool_for_group(
    stack: StackConfig, key: _GroupKey, members: Sequence[_Member], overhead: ResourceVector,
) -> tuple[NodePool | None, list[Problem]]:
    pods = [_replica_pod(ResourceVector.of_replica(dep.resources), overhead) for _, dep in members]
    if not key.is_cpu:
        return _gpu_pool_for(stack, key, members, pods)
    explicit = stack.rayservice.cpu_pool
    if explicit is None:
        return _first_holding(_plain_cpu_pools(stack), pods), []
    for pool in stack.pools:
        if pool.name == explicit:
            return pool, []
    known = ", ".join(p.name for p in stack.pools)
    return None, [Problem("rayservice.cpu_pool",
                          f"no pool named {explicit!r}; choose one of: {known}")]


def _gpu_pool_for(
    stack: StackConfig, key: _GroupKey, members: Sequence[_Member],
    pods: Sequence[ResourceVector],
) -> tuple[NodePool | None, list[Problem]]:
    """The first pool that provides the group's accelerator resource (and Ray accelerator type)
    and whose nodes hold each replica's pod."""
    resource, accelerator_type = key
    matching = [
        p for p in stack.pools
        if p.accelerator is not None and p.accelerator.resource == resource
        and (accelerator_type is None or p.accelerator.ray_type == accelerator_type)
    ]
    if matching:
        return _first_holding(matching, pods), []
    offered = sorted(
        f"{p.name} ({p.accelerator.resource}"
        + (f", ray_type {p.accelerator.ray_type}" if p.accelerator.ray_type else "") + ")"
        for p in stack.pools if p.accelerator is not None
    )
    wanted = f"resource: {resource}" + (f", ray_type: {accelerator_type}" if accelerator_type
                                        else "")
    kind = f" with accelerator_type {accelerator_type}" if accelerator_type else ""
    return None, [
        Problem(
            deployment_path(app.name, dep.name, "resources"),
            f"deployment {deployment_path(app.name, dep.name)} requests "
            f"{dep.resources.num_gpus:g} {resource}{kind} but no pool provides it "
            f"(accelerator pools: {', '.join(offered) or 'none'}); "
            f"add a pool with accelerator: {{{wanted}}}",
        )
        for app, dep in members
    ]


# --- sizing one worker group --------------------------------------------------------------


def _replica_pod(replica: ResourceVector, overhead: ResourceVector) -> ResourceVector:
    """The smallest pod holding one replica: Ray's num-cpus is a whole number."""
    return ResourceVector.whole(replica.whole_cpus, replica.memory, replica.devices) + overhead


def _fitting_members(
    key: _GroupKey, members: Sequence[_Member], pool: NodePool, overhead: ResourceVector,
) -> tuple[list[_Member], list[Problem]]:
    """The members whose one-replica pod fits a node of `pool`; the others as problems."""
    node = ResourceVector.of_node(pool)
    fitting: list[_Member] = []
    problems: list[Problem] = []
    for app, dep in members:
        replica = ResourceVector.of_replica(dep.resources)
        if _replica_pod(replica, overhead).fits(node):
            fitting.append((app, dep))
        else:
            problems.append(Problem(deployment_path(app.name, dep.name, "resources"),
                                    _too_large(replica, overhead, pool, key)))
    return fitting, problems


class _OpenPod:
    """A pod being filled during packing; GPUs are tracked per device like Ray does."""

    def __init__(self, ray: ResourceVector) -> None:
        self.free = replace(ray, gpu=0)  # CPU and memory left
        self.devices = [UNIT] * ray.devices  # what is left of each device

    def take(self, replica: ResourceVector) -> bool:
        cpu_and_memory = replace(replica, gpu=0)
        if not cpu_and_memory.fits(self.free):
            return False
        if replica.gpu >= UNIT:
            free = [i for i, left in enumerate(self.devices) if left == UNIT]
            if len(free) < replica.devices:
                return False
            for i in free[:replica.devices]:
                self.devices[i] = 0
        elif replica.gpu > 0:
            fitting = [i for i, left in enumerate(self.devices) if left >= replica.gpu]
            if not fitting:
                return False
            fullest = min(fitting, key=lambda i: (self.devices[i], i))
            self.devices[fullest] -= replica.gpu
        self.free = self.free - cpu_and_memory
        return True


def _largest_first(item: ResourceVector) -> tuple[int, int, int]:
    return (item.gpu, item.cpu, item.memory)


def _pods_needed(replicas: Iterable[ResourceVector], ray: ResourceVector) -> int:
    """First-fit decreasing: a placement of `replicas` into this many pods exists."""
    pods: list[_OpenPod] = []
    for replica in sorted(replicas, key=_largest_first, reverse=True):
        if not any(pod.take(replica) for pod in pods):
            pod = _OpenPod(ray)
            if not pod.take(replica):
                raise ValueError(f"replica {replica} is larger than pod capacity {ray}")
            pods.append(pod)
    return len(pods)


def _nodes_needed(pods: Iterable[ResourceVector], node: ResourceVector) -> int:
    """First-fit decreasing of pods onto identical nodes."""
    free: list[ResourceVector] = []
    for pod in sorted(pods, key=_largest_first, reverse=True):
        for i, room in enumerate(free):
            if pod.fits(room):
                free[i] = room - pod
                break
        else:
            if not pod.fits(node):
                raise ValueError(f"pod {pod} is larger than node {node}")
            free.append(node - pod)
    return len(free)


def _replicas(members: Sequence[_Member], load: Load) -> list[ResourceVector]:
    return [ResourceVector.of_replica(dep.resources)
            for _, dep in members for _ in range(load.replicas(dep))]


MIB = 1024**2


def _room(node: ResourceVector, overhead: ResourceVector,
          beside: Sequence[ResourceVector] = ()) -> ResourceVector:
    """What Ray may schedule in a pod that fills a node after its overhead and the pods
    `beside` it: whole CPUs and devices."""
    room = node - overhead
    for pod in beside:
        room = room - pod
    memory = max(room.memory, 0) // MIB * MIB  # whole MiB, as people write pod sizes
    return ResourceVector.whole(cpus=max(room.cpu, 0) // UNIT, memory=memory,
                                devices=max(room.gpu, 0) // UNIT)


def _worker_pod_ray(members: Sequence[_Member], pool: NodePool, overhead: ResourceVector,
                    system: Sequence[ResourceVector]) -> ResourceVector:
    """One worker pod per node, as KubeRay advises, so the pod template follows from the pool
    alone and adding, removing or resizing an app rolls out in place.

    On the head's pool (`system`: the head and operator pods) a pod leaves room for them on
    every node, so the head shares a node at min load and a rescheduled head finds room on
    any node. A pod takes the whole node instead when that room would cost it more than half
    its CPU or memory (a pool of one node always shares), or when some replica would not fit."""
    node = ResourceVector.of_node(pool)
    whole = _room(node, overhead)
    if not system:
        return whole
    beside = _room(node, overhead, system)
    replicas = [ResourceVector.of_replica(dep.resources) for _, dep in members]
    holds = all(_OpenPod(beside).take(replica) for replica in replicas)
    worth = pool.max_nodes == 1 or (2 * beside.cpu >= whole.cpu
                                    and 2 * beside.memory >= whole.memory)
    return beside if holds and worth else whole


def _plan_group(
    stack: StackConfig, key: _GroupKey, members: Sequence[_Member], pool: NodePool,
    overhead: ResourceVector, system: Sequence[ResourceVector],
) -> WorkerGroupPlan:
    ray = _worker_pod_ray(members, pool, overhead, system)
    # First-fit decreasing is not monotone: a subset of the replicas can need one bin more
    # than the whole set (found by the property tests). The plan never counts fewer pods for
    # a larger load, so each count is at least the one below it.
    min_pods = _pods_needed(_replicas(members, Load.MIN), ray)
    initial_pods = max(min_pods, _pods_needed(_replicas(members, Load.INITIAL), ray))
    max_pods = max(initial_pods, _pods_needed(_replicas(members, Load.MAX), ray))
    placements = tuple(
        DeploymentPlacement(
            app=app.name, deployment=dep.name,
            min_replicas=dep.min_replicas, max_replicas=dep.max_replicas,
            num_cpus=dep.resources.num_cpus, num_gpus=dep.resources.num_gpus,
            memory=int(dep.resources.memory), initial_replicas=dep.initial_replicas,
            replicas_per_pod=_fit_count(ResourceVector.of_replica(dep.resources), ray,
                                        dep.max_replicas),
        )
        for app, dep in members
    )
    return WorkerGroupPlan(
        name=group_name(key.accelerator_resource, key.accelerator_type),
        pool=pool.name,
        ray=ray,
        overhead=overhead,
        object_store_memory=stack.rayservice.object_store_bytes,
        accelerator_resource=key.accelerator_resource if ray.gpu else None,
        min_pods=min_pods,
        initial_pods=initial_pods,
        max_pods=max_pods,
        node_selector=dict(pool.labels),
        tolerations=tuple(pool.taints),
        deployments=placements,
    )


def _fit_count(replica: ResourceVector, ray: ResourceVector, at_most: int) -> int:
    """How many of one replica a single pod takes; replicas needing nothing all fit."""
    return at_most if replica.is_empty else replica.count_in(ray)


# --- pools --------------------------------------------------------------------------------


def _hosts_head(pool: NodePool, head_pool: NodePool | None) -> bool:
    return head_pool is not None and head_pool.name == pool.name


def _head_pods(pool: NodePool, head_pool: NodePool | None,
               head_pod: ResourceVector) -> list[ResourceVector]:
    """The head pod on its pool: one per Ray cluster, so two while an upgrade runs. One
    larger than a node is a problem of _system_pod_problems."""
    fits = _hosts_head(pool, head_pool) and head_pod.fits(ResourceVector.of_node(pool))
    return [head_pod] if fits else []


def _shared_pods(stack: StackConfig, pool: NodePool,
                 head_pool: NodePool | None) -> list[ResourceVector]:
    """The operator, on the head's pool: it serves both clusters of an upgrade."""
    if not _hosts_head(pool, head_pool):
        return []
    node = ResourceVector.of_node(pool)
    return [pod for pod in operator_pods(stack) if pod.fits(node)]


def _system_pods(stack: StackConfig, pool: NodePool, head_pool: NodePool | None,
                 head_pod: ResourceVector) -> list[ResourceVector]:
    return [*_head_pods(pool, head_pool, head_pod), *_shared_pods(stack, pool, head_pool)]


def _plan_pool(
    stack: StackConfig, pool: NodePool, groups: Sequence[WorkerGroupPlan],
    head_pool: NodePool | None, head_pod: ResourceVector,
) -> PoolPlan:
    node = ResourceVector.of_node(pool)
    here = [g for g in groups if g.pool == pool.name]
    hosts_head = _hosts_head(pool, head_pool)
    system = _head_pods(pool, head_pool, head_pod)  # per Ray cluster: doubled in an upgrade
    shared = _shared_pods(stack, pool, head_pool)  # the operator serves both clusters

    def pods(load: Load) -> list[ResourceVector]:
        return [g.pod for g in here for _ in range(g.pods(load))]

    at_max = _nodes_needed([*system, *shared, *pods(Load.MAX)], node)
    at_min = _nodes_needed([*system, *shared, *pods(Load.MIN)], node)
    # First-fit decreasing is not monotone (see _plan_group); the initial pods are a subset
    # of the max ones, so they fit wherever those do.
    at_initial = min(at_max, max(at_min, _nodes_needed([*system, *shared, *pods(Load.INITIAL)],
                                                       node)))
    surge = {
        "None": [],
        "NewCluster": [*system, *pods(Load.INITIAL)],
        "NewClusterWithIncrementalUpgrade": [*system, *pods(Load.MAX)],
    }[stack.rayservice.upgrade_strategy]
    return PoolPlan(
        pool=pool.name, min_nodes=pool.min_nodes, max_nodes=pool.max_nodes,
        nodes_needed=at_max,
        nodes_needed_during_upgrade=_nodes_needed(
            [*system, *shared, *pods(Load.MAX), *surge], node),
        gpus_needed=sum(g.pod.devices * g.max_pods for g in here),
        nodes_needed_at_min=at_min,
        nodes_needed_at_initial=at_initial,
        worker_groups=tuple(g.name for g in here),
        hosts_head=hosts_head,
        accelerator=pool.accelerator.label if pool.accelerator else None,
    )


def operator_pods(stack: StackConfig) -> list[ResourceVector]:
    """The KubeRay operator's pod, on the head's pool, when this stack installs it; a shared
    operator runs wherever its owner put it."""
    return [ResourceVector.of_pod(stack.kuberay.resources)] if stack.kuberay.install else []


def _system_pod_problems(stack: StackConfig, pool: NodePool,
                         head_pod: ResourceVector) -> list[Problem]:
    """The head pod and the KubeRay operator pod each fit a node of the head's pool."""
    node = ResourceVector.of_node(pool)
    system = [
        ("rayservice.head", "the head pod (rayservice.head plus the autoscaler sidecar, "
         "rayservice.autoscaler.resources)", head_pod),
    ]
    if stack.kuberay.install:  # a shared operator runs wherever its owner put it
        system.append(("kuberay.resources", "the KubeRay operator pod",
                       ResourceVector.of_pod(stack.kuberay.resources)))
    return [
        Problem(path, f"{what} needs {need.describe()} but a node of pool {pool.name!r} has "
                      f"allocatable {node.describe()}; lower it or give {pool_path(pool.name)} "
                      f"larger nodes ({_node_fields(need.lacking(node))})")
        for path, what, need in system if not need.fits(node)
    ]


def _worst_case_problems(plan: PoolPlan, groups: Sequence[WorkerGroupPlan]) -> list[Problem]:
    if plan.nodes_needed <= plan.max_nodes:
        return []
    here = [g for g in groups if g.pool == plan.pool]
    return [Problem(
        pool_path(plan.pool, "max_nodes"),
        f"the worst case (every deployment at max_replicas) needs {plan.nodes_needed} nodes for "
        f"{_contents(here, plan.hosts_head)}; max_nodes is {plan.max_nodes}; raise "
        f"max_nodes to {plan.nodes_needed} or lower the deployments' max_replicas",
    )]


NODE_DISK_SHARE_FOR_PODS = 0.5
"""Of a node's boot disk, what pods' ephemeral storage may take: the rest holds the OS,
images and logs (kubelet evicts pods at 10-15% free by default)."""


def cache_ephemeral_storage(stack: StackConfig) -> int:
    """Node disk one worker pod's model cache takes: an emptyDir cache's size, else 0."""
    cache = stack.model_sources.cache
    return int(cache.size) if stack.declares_model_sources and cache.volume == "emptyDir" else 0


def _model_cache_problems(stack: StackConfig, pool: NodePool,
                          groups: Sequence[WorkerGroupPlan]) -> list[Problem]:
    """Every worker pod that can share a node also holds an emptyDir model cache: together
    they must fit the node's disk (the pods request it as ephemeral storage)."""
    per_pod = cache_ephemeral_storage(stack)
    here = [g for g in groups if g.pool == pool.name]
    if not per_pod or not here:
        return []
    node = ResourceVector.of_node(pool)
    pods_per_node = sum(min(g.max_pods, _fit_count(g.pod, node, g.max_pods)) for g in here)
    need = pods_per_node * per_pod
    budget = int(pool.disk_gb * 1000**3 * NODE_DISK_SHARE_FOR_PODS)
    if need <= budget:
        return []
    return [Problem(
        "model_sources.cache.size",
        f"up to {pods_per_node} worker pods share a node of pool {pool.name!r}, each with a "
        f"{per_pod} byte model cache: {need} bytes, more than half its {pool.disk_gb} GB disk; "
        f"lower the cache size, use a hostPath cache or raise {pool.path('disk_gb')}",
    )]


def _upgrade_warnings(stack: StackConfig, plan: PoolPlan) -> list[str]:
    """Only for a pool that holds the worst case: otherwise the plan fails anyway. The
    incremental strategy's steps are sized to fit (infra/upgrade_plan.py) or refused."""
    if stack.rayservice.upgrade_strategy == "NewClusterWithIncrementalUpgrade":
        return []
    if plan.nodes_needed > plan.max_nodes or not plan.upgrade_shortfall:
        return []
    during = plan.nodes_needed_during_upgrade
    return [
        f"{pool_path(plan.pool)}: a {stack.rayservice.upgrade_strategy} upgrade runs the new "
        f"Ray cluster beside the old one and needs {during} nodes; max_nodes is "
        f"{plan.max_nodes}, {plan.upgrade_shortfall} short, so the new cluster waits for "
        f"capacity. Raise max_nodes to {during} to upgrade at peak load"
    ]


def _idle_tainted_pools(stack: StackConfig,
                        pools: Sequence[PoolPlan]) -> Iterator[tuple[NodePool, str]]:
    """Tolerations are derived from the taints of the pool a group lands on, so a taint is
    tolerated by nothing exactly when no worker group lands on its pool: yields such pools
    with their taints spelled out."""
    for plan in pools:
        pool = stack.pool(plan.pool)
        if pool.taints and not plan.worker_groups:
            yield pool, ", ".join(f"{t.key}={t.value}:{t.effect}" for t in pool.taints)


def _idle_taint_problem(pool: NodePool, taints: str) -> Problem:
    return Problem(
        pool.path("taints"),
        f"no worker group lands on this pool, so nothing tolerates its taints ({taints}) "
        f"and its min_nodes ({pool.min_nodes}) would sit idle; set min_nodes: 0, "
        "remove the pool, or point deployments at it (matching accelerator, or "
        "rayservice.cpu_pool for CPU replicas)",
    )


def _selector_warnings(stack: StackConfig, pools: Sequence[PoolPlan]) -> list[str]:
    if len(stack.pools) < 2:
        return []
    return [
        f"{pool_path(plan.pool)} has no labels, so pods placed on it get no nodeSelector "
        "and may land on any other pool whose taints they tolerate; add labels "
        f"(e.g. servestack.io/pool: {plan.pool})"
        for plan in pools
        if (plan.worker_groups or plan.hosts_head) and not stack.pool(plan.pool).labels
    ]


# --- messages -----------------------------------------------------------------------------


_NODE_FIELDS = {"cpu": "cpu", "memory": "memory", "gpu": "accelerator.count"}


def _node_fields(lacking: Iterable[str]) -> str:
    """The pool fields that would make a node large enough."""
    return ", ".join(_NODE_FIELDS[dimension] for dimension in lacking)


def _too_large(replica: ResourceVector, overhead: ResourceVector, pool: NodePool,
               key: _GroupKey) -> str:
    pod = _replica_pod(replica, overhead)
    node = ResourceVector.of_node(pool)
    resource = key.accelerator_resource
    whole = "" if replica.cpu % UNIT == 0 else (
        f" (Ray counts a pod's CPUs in whole numbers: {replica.whole_cpus})")
    return (
        f"one replica needs {replica.describe(resource)}{whole}; with "
        f"rayservice.worker_overhead ({overhead.describe()}) its pod needs "
        f"{pod.describe(resource)}, but a node of pool "
        f"{pool.name!r} has allocatable {node.describe(resource)}; lower this deployment's "
        f"resources or give {pool_path(pool.name)} larger nodes ({_node_fields(pod.lacking(node))})"
    )


def _contents(groups: Sequence[WorkerGroupPlan], head: bool) -> str:
    parts = ["the head pod and the KubeRay operator"] if head else []
    parts += [f"{g.max_pods} pods of worker group {g.name} "
              f"({g.pod.describe(g.accelerator_resource)})" for g in groups]
    return ", ".join(parts) or "nothing"
