"""Requests, limits and Ray's own resource view must agree with what Kubernetes reserves.

Ray schedules replicas by what `rayStartParams` says a pod has; Kubernetes places pods by
their requests. If the two disagree, replicas land where no GPU or CPU was reserved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.names import KUBERAY_CHART
from infra.pod_preview import as_mapping, ray_cluster_spec, ray_groups
from policies.rules.quantity import quantity_or_none
from policies.rules.workloads import HELM_RELEASE_TYPES, containers, group_gpu_limit


def _missing_resources(resources: Mapping[str, Any]) -> list[str]:
    missing = []
    for kind in ("requests", "limits"):
        values = as_mapping(resources.get(kind))
        for name in ("cpu", "memory"):
            value = values.get(name)
            if value in (None, "") or quantity_or_none(value) is None:
                missing.append(f"{kind}.{name}")
    return missing


def check_containers_have_resources(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    for container in containers(resource_type, props):
        missing = _missing_resources(as_mapping(container.body.get("resources")))
        if missing:
            yield (
                f"{container.path}.resources: missing {', '.join(missing)}; without them the "
                "scheduler cannot reserve the pod's share and a noisy neighbour can starve it. "
                "Set cpu and memory requests and limits as quantity strings (e.g. '1500m', '4Gi')"
            )
    if resource_type in HELM_RELEASE_TYPES and str(props.get("chart", "")).endswith(KUBERAY_CHART):
        missing = _missing_resources(as_mapping(as_mapping(props.get("values")).get("resources")))
        if missing:
            yield (
                f"values.resources of the {KUBERAY_CHART} chart: missing {', '.join(missing)}; "
                "set the operator's cpu and memory requests and limits "
                "(servestack:kuberay.resources)"
            )


def _ray_param(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    if value is None:
        return None
    return quantity_or_none(str(value).strip('"'))


def check_head_runs_no_replicas(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    located = ray_cluster_spec(resource_type, props)
    if located is None:
        return
    for group in ray_groups(*located):
        if group.kind != "head":
            continue
        params = group.ray_start_params
        path = f"{group.path}.rayStartParams"
        if _ray_param(params, "num-cpus") != 0:
            yield (
                f'{path}.num-cpus is {params.get("num-cpus")!r}; set it to "0" so Serve places no '
                "replica on the head, whose loss would take the GCS and the replicas down together"
            )
        if (_ray_param(params, "num-gpus") or 0) != 0:
            found = params.get("num-gpus")
            yield f'{path}.num-gpus is {found!r}; the head must offer no GPUs, set "0"'


def check_ray_gpus_match_pod_limits(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    located = ray_cluster_spec(resource_type, props)
    if located is None:
        return
    for group in ray_groups(*located):
        limit, names = group_gpu_limit(group)
        declared = group.ray_start_params.get("num-gpus")
        ray_gpus = _ray_param(group.ray_start_params, "num-gpus")
        where = f"{group.path}: rayStartParams.num-gpus"
        if declared is None and limit == 0:
            continue
        if declared is None:
            yield (
                f"{where} is not set but the Ray container's limits give {limit:g} "
                f'({", ".join(names)}); set num-gpus to "{limit:g}" so Ray schedules exactly the '
                "GPUs Kubernetes reserved"
            )
        elif ray_gpus is None:
            yield f'{where} is {declared!r}, not a number; set it to "{limit:g}"'
        elif ray_gpus != limit:
            got = ", ".join(names) if names else "no GPU resource"
            yield (
                f"{where} is {declared!r} but the Ray container's limits give {limit:g} ({got}); "
                "Ray would schedule GPUs the pod does not have (or leave reserved GPUs idle). "
                "Derive both from the deployment's num_gpus"
            )
