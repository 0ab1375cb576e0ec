"""Stack-level rules: worker groups land on pools that have what they need, and the plan fits.

A single resource cannot tell which node pool its pods will land on or whether the pools
are big enough; these rules read the stack's pools and capacity plan (recomputed from the
stack config) next to every registered RayService.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from infra.capacity import CapacityError, CapacityPlan, plan_capacity
from infra.config import StackConfig, Taint
from infra.pod_preview import (
    RAYSERVICE_TYPE,
    RayGroup,
    as_list,
    as_mapping,
    ray_cluster_spec,
    ray_groups,
)
from policies.rules.quantity import quantity_or_none
from policies.rules.workloads import group_gpu_limit

Finding = tuple[str, str | None]  # (message, urn of the resource it is about)

def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Taint) -> bool:
    """Kubernetes' toleration matching, for one taint."""
    for toleration in tolerations:
        operator = toleration.get("operator", "Equal")
        key = toleration.get("key")
        effect = toleration.get("effect")
        if effect and effect != taint.effect:
            continue
        if not key and operator == "Exists":
            return True
        if key != taint.key:
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.value:
            return True
    return False


def _worker_groups(resources: Sequence[Any]) -> Iterator[tuple[Any, RayGroup]]:
    for resource in resources:
        if resource.resource_type != RAYSERVICE_TYPE:
            continue
        located = ray_cluster_spec(resource.resource_type, resource.props)
        if located is None:
            continue
        for group in ray_groups(*located):
            if group.kind == "worker":
                yield resource, group


def check_gpu_workers_target_their_pool(
    resources: Sequence[Any], stack: StackConfig
) -> Iterator[Finding]:
    for resource, group in _worker_groups(resources):
        gpus, names = group_gpu_limit(group)
        if gpus <= 0:
            continue
        selector = {
            str(k): str(v) for k, v in as_mapping(group.pod_spec.get("nodeSelector")).items()
        }
        tolerations = [as_mapping(t) for t in as_list(group.pod_spec.get("tolerations"))]
        where = f"{group.path}.template.spec"
        if not selector:
            yield (
                f"{where}.nodeSelector is empty: GPU pods could be placed on any pool; select "
                "the GPU pool's labels (derived from the capacity plan)",
                resource.urn,
            )
            continue
        pools = [p for p in stack.pools if selector.items() <= stack.cluster.node_labels(p).items()]
        if not pools:
            known = ", ".join(f"{p.name} {stack.cluster.node_labels(p)}" for p in stack.pools)
            yield (
                f"{where}.nodeSelector {selector} matches no node pool of the stack ({known}); "
                "the pods would stay Pending",
                resource.urn,
            )
            continue
        for pool in pools:
            offered = pool.accelerator.resource if pool.accelerator else None
            if offered not in names:
                yield (
                    f"{where}.nodeSelector {selector} selects pool {pool.name!r}, which offers "
                    f"{offered or 'no GPUs'} but the pods request {', '.join(names)}",
                    resource.urn,
                )
            missing = [t for t in pool.taints if not tolerates(tolerations, t)]
            if missing:
                taints = ", ".join(f"{t.key}={t.value}:{t.effect}" for t in missing)
                yield (
                    f"{where}.tolerations do not tolerate pool {pool.name!r}'s taint(s) {taints}; "
                    "the pods would never schedule. Derive tolerations from the pool's taints",
                    resource.urn,
                )


def _ray_container_requests(group: RayGroup) -> tuple[float | None, float | None]:
    containers = as_list(group.pod_spec.get("containers"))
    first = as_mapping(containers[0]) if containers else {}
    requests = as_mapping(as_mapping(first.get("resources")).get("requests"))
    return quantity_or_none(requests.get("cpu")), quantity_or_none(requests.get("memory"))


def _compare_with_plan(resource: Any, group: RayGroup, plan: CapacityPlan) -> Iterator[Finding]:
    planned = {g.name: g for g in plan.worker_groups}
    shape = planned.get(group.name)
    if shape is None:
        yield (
            f"{group.path}: worker group {group.name!r} is not in the capacity plan "
            f"(planned: {', '.join(sorted(planned)) or 'none'}); nothing reserved nodes for it",
            resource.urn,
        )
        return
    max_replicas = group.spec.get("maxReplicas")
    if isinstance(max_replicas, int | float) and max_replicas > shape.max_pods:
        yield (
            f"{group.path}.maxReplicas is {max_replicas:g} but the plan sized pool {shape.pool!r} "
            f"for {shape.max_pods}; the extra pods would find no node",
            resource.urn,
        )
    cpu, memory = _ray_container_requests(group)
    if cpu is not None and cpu > shape.pod.cpus + 1e-9:
        yield (
            f"{group.path}: the Ray container requests {cpu:g} CPU but the plan packed "
            f"{shape.pod.cpus:g} CPU per pod onto pool {shape.pool!r}",
            resource.urn,
        )
    if memory is not None and memory > shape.pod.memory:
        yield (
            f"{group.path}: the Ray container requests {memory:.0f} bytes of memory but the plan "
            f"packed {shape.pod.memory} per pod onto pool {shape.pool!r}",
            resource.urn,
        )
    gpus, _names = group_gpu_limit(group)
    if gpus != shape.pod.devices:
        yield (
            f"{group.path}: the Ray container's GPU limit is {gpus:g} but the plan reserved "
            f"{shape.pod.devices} per pod",
            resource.urn,
        )


def check_capacity_plan_fits(resources: Sequence[Any], stack: StackConfig) -> Iterator[Finding]:
    try:
        plan = plan_capacity(stack)
    except CapacityError as error:
        for path, message in error.problems:
            yield f"capacity plan: servestack:{path}: {message}", None
        return
    seen: set[str] = set()
    for resource, group in _worker_groups(resources):
        seen.add(group.name)
        yield from _compare_with_plan(resource, group, plan)
    rayservices = [r for r in resources if r.resource_type == RAYSERVICE_TYPE]
    for planned in plan.worker_groups:
        if rayservices and planned.name not in seen:
            yield (
                f"the capacity plan has worker group {planned.name!r} (deployments "
                f"{', '.join(f'{d.app}/{d.deployment}' for d in planned.deployments)}) but no "
                "RayService declares it; those replicas have nowhere to run",
                rayservices[0].urn,
            )
