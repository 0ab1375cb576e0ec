"""Can Ray's autoscaler place every deployment on the worker groups the RayService declares?

The KubeRay autoscaler does not read pod templates the way Kubernetes does: it knows a group
only by Ray's own translation of the group spec, and a replica only by what Serve demands for
it (`resources_from_ray_options`) and the label selector Serve gives the replica actor
(matched by Ray's `node_labels_match_selector`). All of it is Ray's code, reached through
infra.ray_internals and never re-implemented, so a resource or label the translation does not see
(an `accelerator_type:L4` missing from `rayStartParams`, a group without the worker-group
label its deployments select) fails here, before anything is registered, instead of leaving
a deployment infeasible on the cluster.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.spec import ApplicationSpec
from infra.capacity import CapacityPlan
from infra.config import StackConfig
from infra.field_paths import deployment_path
from infra.quantities import gib
from infra.ray_internals import (
    HEAD_GROUP_NAME,
    autoscaling_config_of,
    node_labels_match_selector,
    resources_from_ray_options,
)
from infra.serve_config import deployment_entry, worker_group_selectors
from infra.worker_groups import ray_cluster_config

HEAD_NODE_TYPE = HEAD_GROUP_NAME
"""What Ray's translation calls the head group."""


@dataclass(frozen=True)
class NodeType:
    """One autoscaler node type, exactly as Ray's translation derives it from a group."""

    name: str
    resources: Mapping[str, float]
    min_workers: int
    max_workers: int
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_head(self) -> bool:
        return self.name == HEAD_NODE_TYPE


@dataclass(frozen=True)
class ReplicaDemand:
    """What Serve asks Ray for, per replica of one deployment."""

    app: str
    deployment: str
    resources: Mapping[str, float]
    max_replicas: int
    label_selector: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return deployment_path(self.app, self.deployment)


def raycluster_document(name: str, namespace: str, ray_cluster_config: Mapping[str, Any]
                        ) -> dict[str, Any]:
    """The RayCluster KubeRay creates from a RayService's `rayClusterConfig`, as the autoscaler
    sidecar fetches it."""
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(ray_cluster_config)}


def autoscaling_config(raycluster: Mapping[str, Any]) -> dict[str, Any]:
    """Ray's translation of a RayCluster into its autoscaling config (the sidecar's code)."""
    return autoscaling_config_of(raycluster)


def node_types(config: Mapping[str, Any]) -> tuple[NodeType, ...]:
    """The node types of a translated autoscaling config, head first, then in spec order."""
    return tuple(
        NodeType(name=name, resources=dict(spec.get("resources") or {}),
                 min_workers=int(spec.get("min_workers", 0)),
                 max_workers=int(spec.get("max_workers", 0)),
                 labels=dict(spec.get("labels") or {}))
        for name, spec in config["available_node_types"].items()
    )


def replica_demand(ray_actor_options: Mapping[str, Any]) -> dict[str, float]:
    """Serve's resource request for one replica (ReplicaConfig uses the same Ray function);
    zero amounts are no demand at all."""
    resources = resources_from_ray_options(ray_actor_options)
    return {key: float(value) for key, value in sorted(resources.items()) if value}


def demand_of(app: str, deployment: str, ray_actor_options: Mapping[str, Any],
              max_replicas: int) -> ReplicaDemand:
    """A deployment's demand as its Serve config entry states it: resources and selector."""
    return ReplicaDemand(app=app, deployment=deployment,
                         resources=replica_demand(ray_actor_options),
                         max_replicas=max_replicas,
                         label_selector=dict(ray_actor_options.get("label_selector") or {}))


def demands_of(applications: Iterable[ApplicationSpec]) -> tuple[ReplicaDemand, ...]:
    """Every deployment's demand from the entry the stack's Serve config carries."""
    applications = tuple(applications)
    selectors = worker_group_selectors(applications)
    return tuple(
        demand_of(app.name, dep.name,
                  deployment_entry(dep, selectors.get((app.name, dep.name)))[
                      "ray_actor_options"],
                  dep.max_replicas)
        for app in applications for dep in app.deployments
    )


def selects(selector: Mapping[str, str], node: NodeType) -> bool:
    """Does the node type carry the labels the selector asks for (Ray's own matcher)?"""
    if not selector:
        return True
    return node_labels_match_selector(node.labels, selector)


def holds(demand: ReplicaDemand, node: NodeType) -> bool:
    """A node of this type could run a replica: enough of every resource, matching labels."""
    return not lacks(demand.resources, node) and selects(demand.label_selector, node)


def format_labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {labels[key]}" for key in sorted(labels)) + "}"


def lacks(demand: Mapping[str, float], node: NodeType) -> dict[str, tuple[float, float]]:
    """Each resource the node type offers too little of: name → (demanded, offered)."""
    return {key: (amount, node.resources.get(key, 0.0)) for key, amount in demand.items()
            if node.resources.get(key, 0.0) < amount}


def replicas_per_node(demand: Mapping[str, float], node: NodeType) -> int:
    """Replicas of one demand that one node of this type holds (Ray's 1/10000 granularity)."""
    counts = [math.floor(round(node.resources.get(key, 0.0) * 10_000) / round(amount * 10_000))
              for key, amount in demand.items()]
    return min(counts) if counts else 0


def format_resources(resources: Mapping[str, float]) -> str:
    """`{CPU: 1, GPU: 0.5, accelerator_type:L4: 0.001, memory: 3GiB}`: memory in GiB."""
    parts = []
    for key in sorted(resources):
        value = resources[key]
        parts.append(f"{key}: {gib(value)}" if key in ("memory", "object_store_memory")
                     else f"{key}: {value:g}")
    return "{" + ", ".join(parts) + "}"


def describe_lacks(demand: Mapping[str, float], nodes: Iterable[NodeType],
                   label_selector: Mapping[str, str] | None = None) -> str:
    """`cpu lacks GPU (0.5 > 0), accelerator_type:L4 (…); gpu-… lacks …` for every node type,
    and `labels {…} do not match` where the selector rules the node type out."""
    described = []
    for node in nodes:
        missing = lacks(demand, node)
        what = ", ".join(
            f"{key} ({needed:g} > {offered:g})" if key != "memory"
            else f"memory ({gib(needed)} > {gib(offered)})"
            for key, (needed, offered) in missing.items()
        ) if missing else "nothing"
        text = f"{node.name} {format_resources(node.resources)} lacks {what}"
        if label_selector and not selects(label_selector, node):
            text += f", and its labels {format_labels(node.labels)} do not match"
        described.append(text)
    return "; ".join(described)


def placement_problems(nodes: Iterable[NodeType], demands: Iterable[ReplicaDemand]
                       ) -> list[tuple[str, str]]:
    """Every deployment must fit some worker node type (resources and label selector), never
    the head, and the worker types it fits must hold its max_replicas within their
    maxReplicas."""
    nodes = tuple(nodes)
    workers = [node for node in nodes if not node.is_head]
    problems: list[tuple[str, str]] = []
    for demand in demands:
        head = [node for node in nodes if node.is_head and holds(demand, node)]
        if head:
            problems.append((
                f"{demand.path}.resources",
                f"a replica demanding {format_resources(demand.resources)} fits the head "
                f"({format_resources(head[0].resources)}), so Ray may place it there beside the "
                "GCS and the Serve controller; give it num_cpus > 0",
            ))
            continue
        fitting = [node for node in workers if holds(demand, node)]
        if not fitting:
            selector = (f" and selecting {format_labels(demand.label_selector)}"
                        if demand.label_selector else "")
            problems.append((
                f"{demand.path}.resources",
                f"Ray's autoscaler cannot place a replica demanding "
                f"{format_resources(demand.resources)}{selector}: "
                f"{describe_lacks(demand.resources, nodes, demand.label_selector)}",
            ))
            continue
        room = sum(replicas_per_node(demand.resources, node) * node.max_workers
                   for node in fitting)
        if room < demand.max_replicas:
            groups = ", ".join(
                f"{node.name} ({replicas_per_node(demand.resources, node)} per node x "
                f"maxReplicas {node.max_workers})" for node in fitting)
            problems.append((
                f"{demand.path}.autoscaling.max_replicas",
                f"max_replicas is {demand.max_replicas} but the worker groups that fit a replica "
                f"hold only {room}: {groups}",
            ))
    return problems


def autoscaler_placement_problems(stack: StackConfig, plan: CapacityPlan
                                  ) -> list[tuple[str, str]]:
    """Ray's translation of the RayCluster this stack renders, against Serve's demand for every
    deployment; `(field path, message)` per deployment the autoscaler could not place."""
    document = raycluster_document(stack.rayservice.name, stack.namespace,
                                   ray_cluster_config(stack, plan))
    return placement_problems(node_types(autoscaling_config(document)),
                              demands_of(stack.applications))
