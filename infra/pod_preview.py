"""What the KubeRay operator will create from a RayService: its groups and their Pods.

Scanners (checkov) and policies cannot see inside a RayService, so this module expands the
head and worker group templates into the Pods the operator makes from them. It reproduces
what comes from the RayService itself (the template, the group's identity labels, and the
in-tree autoscaler sidecar built from `autoscalerOptions`); fields the operator adds on its
own (probes, ports, Ray env vars) are not reproduced, and docs/policies.md says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from infra.names import (
    APP_CREATED_BY_LABEL,
    KUBERAY_CREATED_BY,
    RAY_CLUSTER_LABEL,
    RAY_GROUP_LABEL,
    RAY_HEAD_GROUP,
    RAY_NODE_TYPE_LABEL,
)
from infra.quantities import guaranteed_resources

RAYSERVICE_TYPE = "kubernetes:ray.io/v1:RayService"
RAYCLUSTER_TYPE = "kubernetes:ray.io/v1:RayCluster"
PREVIEW_ANNOTATION = "servestack.io/preview"
PREVIEW_VALUE = "kuberay-pod-template"
SOURCE_ANNOTATION = "servestack.io/preview-source"

# KubeRay's defaults for the autoscaler sidecar when autoscalerOptions leaves them out.
AUTOSCALER_CONTAINER = "autoscaler"
AUTOSCALER_DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = guaranteed_resources(
    0.5, 512 * 2**20)


@dataclass(frozen=True)
class RayGroup:
    """One head or worker group of a Ray cluster spec, with where it sits in the resource."""

    name: str  # "head" or the worker groupName
    kind: Literal["head", "worker"]
    path: str  # field path inside the resource's props, for messages
    spec: Mapping[str, Any]  # the headGroupSpec / workerGroupSpecs[i] mapping

    @property
    def template(self) -> Mapping[str, Any]:
        return as_mapping(self.spec.get("template"))

    @property
    def pod_spec(self) -> Mapping[str, Any]:
        return as_mapping(self.template.get("spec"))

    @property
    def ray_start_params(self) -> Mapping[str, Any]:
        return as_mapping(self.spec.get("rayStartParams"))


@dataclass(frozen=True)
class ContainerRef:
    """A container as the operator will run it, with a field path a user can find."""

    group: RayGroup
    path: str
    container: Mapping[str, Any]
    pod_security_context: Mapping[str, Any]
    role: Literal["ray", "autoscaler", "sidecar", "init"]

    @property
    def name(self) -> str:
        return str(self.container.get("name", "?"))


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """Lists, tuples and CrossGuard's read-only list proxies alike; anything else is empty."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return []


def plain(value: Any) -> Any:
    """A deep, mutable copy made of dicts and lists (CrossGuard hands out read-only proxies)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    return value


def ray_cluster_spec(
    resource_type: str, props: Mapping[str, Any]
) -> tuple[str, Mapping[str, Any]] | None:
    """(path, spec) of the Ray cluster inside a RayService or RayCluster; None for other types."""
    spec = as_mapping(props.get("spec"))
    if resource_type == RAYSERVICE_TYPE:
        return "spec.rayClusterConfig", as_mapping(spec.get("rayClusterConfig"))
    if resource_type == RAYCLUSTER_TYPE:
        return "spec", spec
    return None


def ray_groups(cluster_path: str, cluster: Mapping[str, Any]) -> list[RayGroup]:
    groups = []
    head = cluster.get("headGroupSpec")
    if isinstance(head, Mapping):
        groups.append(RayGroup("head", "head", f"{cluster_path}.headGroupSpec", head))
    for index, worker in enumerate(as_list(cluster.get("workerGroupSpecs"))):
        if isinstance(worker, Mapping):
            name = str(worker.get("groupName") or f"#{index}")
            groups.append(
                RayGroup(name, "worker", f"{cluster_path}.workerGroupSpecs[{name}]", worker)
            )
    return groups


def autoscaling_enabled(cluster: Mapping[str, Any]) -> bool:
    return cluster.get("enableInTreeAutoscaling") is True


def autoscaler_sidecar(cluster: Mapping[str, Any], head: RayGroup) -> dict[str, Any] | None:
    """The sidecar KubeRay adds to the head Pod for in-tree autoscaling, from autoscalerOptions."""
    if not autoscaling_enabled(cluster):
        return None
    options = as_mapping(cluster.get("autoscalerOptions"))
    head_containers = as_list(head.pod_spec.get("containers"))
    head_image = as_mapping(head_containers[0]).get("image") if head_containers else None
    sidecar: dict[str, Any] = {
        "name": AUTOSCALER_CONTAINER,
        "image": options.get("image") or head_image,
        "resources": plain(options.get("resources") or AUTOSCALER_DEFAULT_RESOURCES),
    }
    for source, target in (
        ("imagePullPolicy", "imagePullPolicy"),
        ("securityContext", "securityContext"),
        ("env", "env"),
        ("envFrom", "envFrom"),
        ("volumeMounts", "volumeMounts"),
    ):
        if options.get(source) is not None:
            sidecar[target] = plain(options[source])
    return sidecar


def ray_containers(resource_type: str, props: Mapping[str, Any]) -> Iterator[ContainerRef]:
    """Every container the operator runs for this resource, autoscaler sidecar included."""
    located = ray_cluster_spec(resource_type, props)
    if located is None:
        return
    cluster_path, cluster = located
    for group in ray_groups(cluster_path, cluster):
        pod_security = as_mapping(group.pod_spec.get("securityContext"))
        for field in ("initContainers", "containers"):
            for index, container in enumerate(as_list(group.pod_spec.get(field))):
                if isinstance(container, Mapping):
                    name = container.get("name") or f"#{index}"
                    path = f"{group.path}.template.spec.{field}[{name}]"
                    role: Literal["ray", "autoscaler", "sidecar", "init"] = (
                        "init" if field == "initContainers" else "ray" if index == 0 else "sidecar"
                    )
                    yield ContainerRef(group, path, container, pod_security, role)
        if group.kind == "head":
            sidecar = autoscaler_sidecar(cluster, group)
            if sidecar is not None:
                yield ContainerRef(
                    group, f"{cluster_path}.autoscalerOptions", sidecar, pod_security, "autoscaler"
                )


def preview_pods(
    resource_type: str, props: Mapping[str, Any], resource_name: str
) -> list[dict[str, Any]]:
    """One Pod manifest per head/worker group, marked as a preview of the operator's Pod."""
    located = ray_cluster_spec(resource_type, props)
    if located is None:
        return []
    cluster_path, cluster = located
    metadata = as_mapping(props.get("metadata"))
    owner = str(metadata.get("name") or resource_name)
    namespace = metadata.get("namespace")
    kind = "RayService" if resource_type == RAYSERVICE_TYPE else "RayCluster"
    pods = []
    for group in ray_groups(cluster_path, cluster):
        template_meta = as_mapping(group.template.get("metadata"))
        spec = plain(group.pod_spec)
        if group.kind == "head":
            sidecar = autoscaler_sidecar(cluster, group)
            if sidecar is not None:
                spec["containers"] = [*as_list(spec.get("containers")), sidecar]
        suffix = "head" if group.kind == "head" else f"{group.name}-worker"
        labels = {
            **{str(k): str(v) for k, v in as_mapping(template_meta.get("labels")).items()},
            APP_CREATED_BY_LABEL: KUBERAY_CREATED_BY,
            RAY_CLUSTER_LABEL: owner,
            RAY_GROUP_LABEL: RAY_HEAD_GROUP if group.kind == "head" else group.name,
            RAY_NODE_TYPE_LABEL: group.kind,
        }
        annotations = {
            **{str(k): str(v) for k, v in as_mapping(template_meta.get("annotations")).items()},
            PREVIEW_ANNOTATION: PREVIEW_VALUE,
            SOURCE_ANNOTATION: f"{kind} {owner} {group.path}.template",
        }
        pod_meta: dict[str, Any] = {
            "name": f"{owner}-{suffix}-preview",
            "labels": dict(sorted(labels.items())),
            "annotations": dict(sorted(annotations.items())),
        }
        if namespace:
            pod_meta["namespace"] = namespace
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec})
    return pods
