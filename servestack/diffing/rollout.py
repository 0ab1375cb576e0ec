"""How KubeRay applies a RayService change: Serve updated in place, or a new Ray cluster.

KubeRay 1.7.0's rule (ray-operator/controllers/ray/rayservice_controller.go,
`shouldPrepareNewCluster` and `isClusterSpecHashEqual`, over
`utils.GenerateHashWithoutReplicasAndWorkersToDelete`): it hashes `rayClusterConfig` without
the worker groups' replicas/minReplicas/maxReplicas and workersToDelete, every pod template's
tolerations and schedulingGates, and the spec's suspend and upgradeStrategy.

- Same hash: the running RayCluster is left as it is, so a change to those muted fields
  alone reaches no running cluster (the autoscaler keeps the old replica bounds).
- Same hash once the new spec is cut to the running cluster's number of worker groups (new
  groups appended after the existing ones): the running RayCluster is updated in place with
  the whole spec, muted fields included.
- Otherwise a new RayCluster, and traffic moves to it once it is ready (twice the capacity
  meanwhile, under upgradeStrategy NewCluster; nothing at all under `None`).

A change only to `serveConfigV2` is applied to the running cluster through the Serve REST API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from infra.pod_preview import as_list, as_mapping
from servestack.diffing.fields import ABSENT, FieldChange, field_changes

CLUSTER = "spec.rayClusterConfig"
SERVE_CONFIG = "spec.serveConfigV2"
WORKER_GROUPS = f"{CLUSTER}.workerGroupSpecs"
_GROUP = rf"{re.escape(WORKER_GROUPS)}\[([^\]]+)\]"
_REPLICA_COUNT = re.compile(rf"^{_GROUP}\.(replicas|minReplicas|maxReplicas)$")
_MUTED = re.compile(
    rf"^(?:{re.escape(CLUSTER)}\.(?:suspend|upgradeStrategy)"
    rf"|(?:{re.escape(CLUSTER)}\.headGroupSpec|{_GROUP})\.template\.spec\."
    rf"(?:tolerations|schedulingGates)"
    rf"|{_GROUP}\.scaleStrategy\.workersToDelete)(?:[.\[]|$)"
)
"""The fields besides replica counts KubeRay 1.7.0 leaves out of its cluster hash."""
_ADDED_GROUP = re.compile(rf"^{_GROUP}$")
GROUP_ORDER = f"{WORKER_GROUPS} (order)"

Rollout = Literal["in place", "new cluster", "created", "deleted", "no change"]


@dataclass(frozen=True)
class ServeChange:
    """One Serve config field: application → deployment → option path."""

    app: str  # "" for config-wide fields (http_options, proxy_location)
    deployment: str  # "" for application-level fields
    option: str
    old: Any
    new: Any


@dataclass(frozen=True)
class RayServiceChange:
    name: str
    rollout: Rollout
    cluster_changes: tuple[FieldChange, ...]  # rayClusterConfig fields that force a new cluster
    replica_changes: tuple[FieldChange, ...]  # worker replica bounds (muted by KubeRay)
    other_changes: tuple[FieldChange, ...]  # metadata and spec fields outside both
    serve_changes: tuple[ServeChange, ...]
    upgrade_strategy: str | None
    muted_changes: tuple[FieldChange, ...] = ()  # tolerations, schedulingGates, suspend, ...
    appended_groups: tuple[str, ...] = ()  # new worker groups after the existing ones

    @property
    def updates_running_cluster(self) -> bool:
        """KubeRay writes the whole new spec into the running RayCluster (new groups start)."""
        return self.rollout == "in place" and bool(self.appended_groups)

    @property
    def unapplied_changes(self) -> tuple[FieldChange, ...]:
        """Fields no running cluster gets: muted, and nothing else makes KubeRay copy them."""
        if self.rollout != "in place" or self.appended_groups:
            return ()
        return (*self.replica_changes, *self.muted_changes)

    @property
    def image_changes(self) -> tuple[tuple[Any, Any], ...]:
        """Each distinct (old, new) container image: a new app image is a new cluster."""
        pairs = {(c.old, c.new): None for c in self.cluster_changes if c.path.endswith(".image")}
        return tuple(pairs)


def _serve_document(rayservice: Mapping[str, Any] | None) -> Mapping[str, Any]:
    raw = as_mapping(as_mapping(rayservice).get("spec")).get("serveConfigV2")
    document = yaml.safe_load(raw) if isinstance(raw, str) else None
    return document if isinstance(document, Mapping) else {}


def _by_name(items: Any) -> dict[str, Mapping[str, Any]]:
    return {str(as_mapping(i).get("name")): as_mapping(i) for i in as_list(items)}


def serve_config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ServeChange]:
    """Serve config differences keyed by application and deployment name, not by position."""
    changes = [
        ServeChange("", "", c.path, c.old, c.new)
        for c in field_changes({k: v for k, v in old.items() if k != "applications"},
                               {k: v for k, v in new.items() if k != "applications"})
    ]
    old_apps, new_apps = _by_name(old.get("applications")), _by_name(new.get("applications"))
    for app in sorted(set(old_apps) | set(new_apps)):
        before, after = old_apps.get(app), new_apps.get(app)
        if before is None or after is None:
            changes.append(ServeChange(app, "", "(application)",
                                       "present" if before else ABSENT,
                                       "present" if after else ABSENT))
            continue
        changes += [
            ServeChange(app, "", c.path, c.old, c.new)
            for c in field_changes({k: v for k, v in before.items() if k != "deployments"},
                                   {k: v for k, v in after.items() if k != "deployments"})
        ]
        old_deps, new_deps = _by_name(before.get("deployments")), _by_name(after.get("deployments"))
        for dep in sorted(set(old_deps) | set(new_deps)):
            if dep not in old_deps or dep not in new_deps:
                changes.append(ServeChange(app, dep, "(deployment)",
                                           "present" if dep in old_deps else ABSENT,
                                           "present" if dep in new_deps else ABSENT))
                continue
            changes += [ServeChange(app, dep, c.path, c.old, c.new)
                        for c in field_changes(old_deps[dep], new_deps[dep])]
    return changes


def _group_names(rayservice: Mapping[str, Any]) -> list[str]:
    cluster = as_mapping(as_mapping(rayservice.get("spec")).get("rayClusterConfig"))
    return [str(as_mapping(g).get("groupName")) for g in as_list(cluster.get("workerGroupSpecs"))]


def _appended_groups(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The groups added after the old ones, in order; None when the old groups are not the
    new list's head (one removed, or the order changed), which KubeRay's hash sees."""
    before, after = _group_names(old), _group_names(new)
    if after[:len(before)] != before:
        return None
    return tuple(after[len(before):])


def rayservice_change(name: str, old: Mapping[str, Any] | None,
                      new: Mapping[str, Any] | None) -> RayServiceChange:
    strategy = as_mapping(as_mapping(as_mapping(new or old).get("spec")).get("upgradeStrategy"))
    upgrade = strategy.get("type")
    if old is None or new is None:
        return RayServiceChange(name, "created" if old is None else "deleted", (), (), (), (),
                                str(upgrade) if upgrade else None)
    changes = [c for c in field_changes(old, new) if c.path != SERVE_CONFIG]
    replicas = tuple(c for c in changes if _REPLICA_COUNT.match(c.path))
    muted = tuple(c for c in changes if _MUTED.match(c.path))
    cluster = [c for c in changes if c.path.startswith(f"{CLUSTER}.")
               and c not in replicas and c not in muted]
    appended = _appended_groups(old, new)
    if appended is None:
        before, after = _group_names(old), _group_names(new)
        if [g for g in after if g in before] != [g for g in before if g in after]:
            cluster.append(FieldChange(GROUP_ORDER, before, after))
        appended = ()
    else:
        whole = {f"{WORKER_GROUPS}[{group}]" for group in appended}
        if all(c.path in whole for c in cluster):
            cluster = []  # KubeRay updates the running cluster: the new groups start
        else:
            appended = ()
    other = tuple(c for c in changes
                  if c not in cluster and c not in replicas and c not in muted
                  and not c.path.startswith(f"{CLUSTER}."))
    serve = tuple(serve_config_changes(_serve_document(old), _serve_document(new)))
    if cluster:
        rollout: Rollout = "new cluster"
    elif serve or replicas or muted or other or appended:
        rollout = "in place"
    else:
        rollout = "no change"
    return RayServiceChange(name, rollout, tuple(cluster), replicas, other, serve,
                            str(upgrade) if upgrade else None, muted, appended)


_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason) for pattern, reason in (
        (rf"^{re.escape(GROUP_ORDER)}$", "the worker groups' order changed: KubeRay compares "
         "them by position"),
        (r"\.image$|\.imagePullPolicy$", "the image (servestack:image): every pod restarts on it"),
        (r"\.env\[(SERVESTACK_INGRESS|RAY_SERVE_[A-Z_]+)\]",
         "stack-wide ingress settings (serve.ingress, serve.haproxy), which every proxy reads "
         "from its pod's environment"),
        (r"\.env\[", "the pods' environment: model sources (model_sources) or Ray's own "
         "settings"),
        (r"serviceAccountName", "the pods' service account: the cloud identity model buckets "
         "need (model_sources added or removed)"),
        (r"\.volumes|\.volumeMounts", "the pods' volumes: the model cache (model_sources.cache, "
         "or model_sources added or removed)"),
        (r"\.resources\.|\.resources$|rayStartParams",
         "the pods' size or Ray's start parameters (the node shape of the pool a group "
         "lands on, rayservice.worker_overhead, rayservice.head, or a replica too large to fit "
         "beside the head: docs/capacity.md, 'Pod size')"),
        (r"nodeSelector|affinity",
         "which pool the pods land on (pool labels, rayservice.cpu_pool)"),
        (r"autoscalerOptions|enableInTreeAutoscaling", "the autoscaler (rayservice.autoscaler)"),
        (r"rayVersion", "the Ray version"),
    )
)


def why_new_cluster(change: FieldChange) -> str:
    """Why KubeRay replaces the cluster for this field, in terms of what a stack edit does."""
    group = _ADDED_GROUP.match(change.path)
    if group and change.removed:
        return (f"worker group `{group[1]}` removed (its last deployment left or changed "
                "resource shape): a running cluster never loses a group")
    if group and change.added:
        return (f"worker group `{group[1]}` added (a resource shape no group had): it starts "
                "in place only after the existing groups, with nothing else here changed")
    where = "head: " if ".headGroupSpec." in change.path else ""
    for pattern, reason in _REASONS:
        if pattern.search(change.path):
            return where + reason
    return where + "a cluster field KubeRay hashes"
