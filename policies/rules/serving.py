"""The Serve config inside a RayService: valid for Ray, and GPU deployments kept warm.

KubeRay only types serveConfigV2 as a string, so a broken document passes the API server
and fails later inside the cluster; and a GPU deployment that scales to zero pays a node
scale-up plus a model load on its first request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from infra.field_paths import deployment_path
from infra.pod_preview import RAYSERVICE_TYPE, as_list, as_mapping


def _load(props: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str | None]:
    raw = as_mapping(props.get("spec")).get("serveConfigV2")
    if not isinstance(raw, str) or not raw.strip():
        return None, "spec.serveConfigV2 is missing; the RayService would deploy no applications"
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        return None, f"spec.serveConfigV2 is not YAML: {error}"
    if not isinstance(document, Mapping):
        return None, "spec.serveConfigV2 is not a mapping with an `applications` list"
    return document, None


def check_serve_config_valid(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    if resource_type != RAYSERVICE_TYPE:
        return
    document, problem = _load(props)
    if problem:
        yield problem
        return
    from ray.serve.schema import ServeDeploySchema  # heavy import, only for a RayService

    try:
        ServeDeploySchema.model_validate(document)
    except ValidationError as error:
        for item in error.errors():
            loc = ".".join(str(part) for part in item["loc"])
            yield f"spec.serveConfigV2 {loc}: {item['msg']} (Ray's ServeDeploySchema)"


def _min_replicas(deployment: Mapping[str, Any]) -> int | None:
    autoscaling = deployment.get("autoscaling_config")
    if isinstance(autoscaling, Mapping):
        return int(autoscaling.get("min_replicas", 1))  # Ray's default is 1
    replicas = deployment.get("num_replicas")
    if isinstance(replicas, int):
        return replicas
    return None if replicas is None else 1  # "auto" autoscales from min_replicas=1


def check_gpu_deployments_stay_warm(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    if resource_type != RAYSERVICE_TYPE:
        return
    document, _problem = _load(props)
    for app in as_list((document or {}).get("applications")):
        app = as_mapping(app)
        for dep in as_list(app.get("deployments")):
            dep = as_mapping(dep)
            gpus = as_mapping(dep.get("ray_actor_options")).get("num_gpus") or 0
            minimum = _min_replicas(dep)
            if gpus and minimum is not None and minimum < 1:
                app_name, dep_name = app.get("name", "?"), dep.get("name", "?")
                yield (
                    f"spec.serveConfigV2 applications[{app_name}].deployments[{dep_name}] uses "
                    f"{gpus} GPU per replica but may scale to {minimum} replicas; the first "
                    "request then waits for a GPU node and a model load. Set servestack:"
                    f"{deployment_path(app_name, dep_name, 'autoscaling.min_replicas')} >= 1"
                )
