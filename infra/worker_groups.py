"""The RayCluster inside the RayService: head group, worker groups and autoscaler, from the plan.

Nothing here chooses a size. Every number comes from the capacity plan or the stack, so the
GPU limit equals the devices the plan reserved, the tolerations equal the pool's taints and
`rayStartParams` tell Ray exactly what Kubernetes reserved for the pod.
"""

from __future__ import annotations

from typing import Any

from infra.capacity import CapacityPlan, ResourceVector, WorkerGroupPlan, cache_ephemeral_storage
from infra.config import RAY_VERSION, PodResources, StackConfig, Taint
from infra.ingress_environment import ingress_environment
from infra.model_access import (
    EPHEMERAL_STORAGE,
    model_environment,
    worker_pod_additions,
    worker_volume_mounts,
)
from infra.names import (
    prometheus_scrape_annotations,
    ray_pod_labels,
    worker_group_node_labels,
)
from infra.pod_ports import container_ports
from infra.quantities import guaranteed_resources, memory_quantity
from infra.ray_internals import accelerator_type_resource

RAY_UID = 1000  # user `ray` in rayproject/ray images; numeric so runAsNonRoot can be verified
RAY_GID = 100
SHM_VOLUME = "dshm"
TMP_VOLUME = "tmp"
TMP_MOUNT = "/tmp"
"""Ray's only writable path: session dir, logs, sockets and spilled objects under /tmp/ray."""
HEAD_CONTAINER = "ray-head"
WORKER_CONTAINER = "ray-worker"
AUTOSCALER_VERSION = "v2"
"""Pinned: KubeRay 1.7 with Ray 2.60 would pick v2 for our RayService on its own (Ray's
`ray start --head` enables it when KubeRay's env vars are set), but only `version` makes
KubeRay set RAY_enable_autoscaler_v2 itself, so a Ray or KubeRay upgrade cannot silently
switch the autoscaler the rehearsal ran (servestack/rehearse/cluster.py)."""
RAY_ENV = {"HF_HUB_OFFLINE": "1"}  # weights ship in the image; nothing downloads at runtime


def container_security_context() -> dict[str, Any]:
    """The restricted Pod Security Standard, which the namespace also enforces, plus a
    read-only root: Ray writes only under /tmp (an emptyDir) and /dev/shm."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsGroup": RAY_GID,
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "fsGroup": RAY_GID,
        "runAsGroup": RAY_GID,
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_resources(resources: PodResources) -> dict[str, Any]:
    return guaranteed_resources(resources.cpu, int(resources.memory))


def shape_resources(pod: ResourceVector, accelerator_resource: str | None) -> dict[str, Any]:
    devices = {accelerator_resource: pod.devices} if pod.devices and accelerator_resource else {}
    return guaranteed_resources(pod.cpus, pod.memory, devices=devices)


def toleration(taint: Taint) -> dict[str, Any]:
    return {"effect": taint.effect, "key": taint.key, "operator": "Equal", "value": taint.value}


def rayservice_labels(stack: StackConfig) -> dict[str, str]:
    """The labels of the RayService and of all made for it (its pods, its Secrets): the
    NetworkPolicies and the PodMonitor select its pods by them."""
    return ray_pod_labels(stack.stack, stack.rayservice.name)


def _env(stack: StackConfig, head: bool) -> list[dict[str, Any]]:
    """Every Ray container: Serve's proxy may run on any node (proxy_location EveryNode), so
    each one carries the ingress layer's settings; workers, which run the replicas, also
    where their models come from (infra/model_access.py)."""
    env = {**RAY_ENV, **ingress_environment(stack.serve)}
    plain: list[dict[str, Any]] = [{"name": key, "value": value}
                                   for key, value in sorted(env.items())]
    return plain if head else sorted([*plain, *model_environment(stack)],
                                     key=lambda entry: str(entry["name"]))


def scrape_annotations(stack: StackConfig) -> dict[str, str]:
    """prometheus.io/* annotations, for a Prometheus without the Operator's PodMonitors."""
    if stack.observability.uses_prometheus_operator:
        return {}
    return prometheus_scrape_annotations(stack.observability.metrics_port)


def _pod_template(
    stack: StackConfig, container: dict[str, Any], node_selector: dict[str, str],
    tolerations: tuple[Taint, ...] = (),
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": pod_security_context(),
        # Ray's object store lives in /dev/shm; the container runtime's 64Mi default is too small.
        "volumes": [{"emptyDir": {"medium": "Memory"}, "name": SHM_VOLUME},
                    {"emptyDir": {}, "name": TMP_VOLUME}],
    }
    if node_selector:
        spec["nodeSelector"] = dict(sorted(node_selector.items()))
    if tolerations:
        spec["tolerations"] = [toleration(taint) for taint in tolerations]
    metadata: dict[str, Any] = {"labels": rayservice_labels(stack)}
    annotations = scrape_annotations(stack)
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": spec}


def _container(stack: StackConfig, name: str, image: str, resources: dict[str, Any],
               head: bool) -> dict[str, Any]:
    return {
        "env": _env(stack, head),
        "image": image,
        "imagePullPolicy": stack.image.pull_policy,
        "name": name,
        "ports": container_ports(stack, head),
        "resources": resources,
        "securityContext": container_security_context(),
        "volumeMounts": _volume_mounts() + ([] if head else worker_volume_mounts(stack)),
    }


def _volume_mounts() -> list[dict[str, str]]:
    return [{"mountPath": "/dev/shm", "name": SHM_VOLUME},
            {"mountPath": TMP_MOUNT, "name": TMP_VOLUME}]


def head_group_spec(stack: StackConfig, plan: CapacityPlan) -> dict[str, Any]:
    """num-cpus 0: no Serve replica ever lands on the head, so losing a replica never
    takes the GCS and the controller down with it. No tolerations: the plan only places the
    head on a pool without taints."""
    container = _container(stack, HEAD_CONTAINER, stack.image.reference(gpu=False),
                           pod_resources(stack.rayservice.head), head=True)
    return {
        "rayStartParams": {"dashboard-host": "0.0.0.0", "metrics-export-port": _metrics(stack),
                           "num-cpus": "0"},
        "template": _pod_template(stack, container, plan.head.node_selector),
    }


def accelerator_type_resources(stack: StackConfig, group: WorkerGroupPlan) -> dict[str, str]:
    """`{"accelerator_type:<ray_type>": "1"}` for a GPU group on a pool that names its Ray type,
    as the group's typed `resources` (KubeRay ≥ 1.5 passes it to `ray start --resources`).

    Ray detects the type from the device on a real GPU node, but the KubeRay autoscaler knows
    a group only by Ray's translation of its spec, which reads this field before rayStartParams
    (`_get_custom_resources`). Without it, a deployment with `accelerator_type` is infeasible
    there (KubeRay issue #863), so the group could never scale up for it, from zero least of
    all.
    """
    accelerator = stack.pool(group.pool).accelerator
    if group.ray.devices == 0 or accelerator is None or accelerator.ray_type is None:
        return {}
    return {accelerator_type_resource(accelerator.ray_type): "1"}


def worker_group_spec(stack: StackConfig, group: WorkerGroupPlan) -> dict[str, Any]:
    gpu = group.pod.devices > 0
    resources = shape_resources(group.pod, group.accelerator_resource)
    cache = cache_ephemeral_storage(stack)
    if cache:  # the model cache's emptyDir: the scheduler places the pod where disk fits it
        for kind in ("limits", "requests"):
            resources[kind] = {**resources[kind], EPHEMERAL_STORAGE: memory_quantity(cache)}
    container = _container(stack, WORKER_CONTAINER, stack.image.reference(gpu=gpu),
                           resources, head=False)
    params = {
        "memory": str(group.ray.memory),
        "metrics-export-port": _metrics(stack),
        "num-cpus": str(group.ray.whole_cpus),
        "num-gpus": str(group.ray.devices),
        # Capped: by default Ray's store takes 30% of the pod's memory (from /dev/shm), more
        # than the overhead the plan reserves for it beside `memory`.
        "object-store-memory": str(group.object_store_memory),
    }
    spec: dict[str, Any] = {
        "groupName": group.name,
        # Ray node labels (KubeRay: `ray start --labels`; Ray's translation: the node type's
        # labels): the Serve config's label selectors keep each deployment on its group.
        "labels": worker_group_node_labels(group.name),
        "maxReplicas": group.max_pods,
        "minReplicas": group.min_pods,
        "rayStartParams": params,
        # Only the first apply uses this; afterwards the autoscaler owns it (ignore_changes).
        "replicas": group.min_pods,
        "template": _with_model_access(
            stack, _pod_template(stack, container, group.node_selector, group.tolerations)),
    }
    custom = accelerator_type_resources(stack, group)
    if custom:
        spec["resources"] = custom
    return spec


def _with_model_access(stack: StackConfig, template: dict[str, Any]) -> dict[str, Any]:
    """A worker pod of a stack with remote models: its ServiceAccount and cache volume."""
    additions = worker_pod_additions(stack)
    spec = template["spec"]
    if additions:
        spec["serviceAccountName"] = additions["serviceAccountName"]
        spec["volumes"] = [*spec["volumes"], *additions["volumes"]]
    return template


def autoscaler_options(stack: StackConfig) -> dict[str, Any]:
    autoscaler = stack.rayservice.autoscaler
    return {
        "idleTimeoutSeconds": autoscaler.idle_timeout_s,
        "imagePullPolicy": stack.image.pull_policy,
        "resources": pod_resources(autoscaler.resources),
        "securityContext": container_security_context(),
        "upscalingMode": autoscaler.upscaling_mode,
        "version": AUTOSCALER_VERSION,
        # The head Pod's /tmp: the sidecar writes Ray's autoscaler logs with a read-only root.
        "volumeMounts": [{"mountPath": TMP_MOUNT, "name": TMP_VOLUME}],
    }


def _metrics(stack: StackConfig) -> str:
    return str(stack.observability.metrics_port)


def ray_cluster_config(stack: StackConfig, plan: CapacityPlan) -> dict[str, Any]:
    return {
        "autoscalerOptions": autoscaler_options(stack),
        "enableInTreeAutoscaling": True,
        "headGroupSpec": head_group_spec(stack, plan),
        "rayVersion": RAY_VERSION,
        "workerGroupSpecs": [worker_group_spec(stack, group) for group in plan.worker_groups],
    }
