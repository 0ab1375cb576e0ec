"""Where containers hide in the resources a stack registers: Ray groups and plain workloads.

One walker feeds every container rule, so a new workload kind is taught once and every
rule (resources, images, hardening) sees it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.pod_preview import RayGroup, as_list, as_mapping, ray_containers
from policies.rules.quantity import quantity_or_none

NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
HELM_RELEASE_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")

# Pod-template location per core workload type.
_POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

GPU_RESOURCE_PREFIXES = ("nvidia.com/gpu", "nvidia.com/mig-", "amd.com/gpu")


@dataclass(frozen=True)
class Container:
    """A container with the pod-level security context it inherits and a findable path."""

    path: str
    body: Mapping[str, Any]
    pod_security: Mapping[str, Any]
    group: RayGroup | None = None  # set for Ray head/worker containers
    role: str = "workload"  # Ray groups: "ray" (first container), "autoscaler", "sidecar", "init"

    @property
    def runs_ray(self) -> bool:
        """KubeRay runs Ray in each group's first container; the autoscaler sidecar is Ray too."""
        return self.role in ("ray", "autoscaler")


def containers(resource_type: str, props: Mapping[str, Any]) -> Iterator[Container]:
    for ref in ray_containers(resource_type, props):
        yield Container(ref.path, ref.container, ref.pod_security_context, ref.group, ref.role)
    path = _POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return
    spec: Mapping[str, Any] = props
    for key in path:
        spec = as_mapping(spec.get(key))
    pod_security = as_mapping(spec.get("securityContext"))
    for field in ("initContainers", "containers"):
        for index, body in enumerate(as_list(spec.get(field))):
            if isinstance(body, Mapping):
                name = body.get("name") or f"#{index}"
                yield Container(f"{'.'.join(path)}.{field}[{name}]", body, pod_security)


def gpu_limits(container: Mapping[str, Any]) -> dict[str, float]:
    """GPU-like extended resources in a container's limits (whole GPUs or MIG slices)."""
    limits = as_mapping(as_mapping(container.get("resources")).get("limits"))
    found: dict[str, float] = {}
    for key, value in limits.items():
        if str(key).startswith(GPU_RESOURCE_PREFIXES):
            amount = quantity_or_none(value)
            found[str(key)] = amount if amount is not None else 0.0
    return found


def group_gpu_limit(group: RayGroup) -> tuple[float, tuple[str, ...]]:
    """Total GPU-like limit of a group's Ray container, and which resource names give it."""
    ray = as_list(group.pod_spec.get("containers"))
    if not ray or not isinstance(ray[0], Mapping):
        return 0.0, ()
    limits = gpu_limits(ray[0])
    return sum(limits.values()), tuple(sorted(limits))
