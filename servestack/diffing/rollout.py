"""How KubeRay applies a RayService change: Serve updated in place, or a new Ray cluster.

KubeRay compares the RayService's `rayClusterConfig` with the running cluster's: any change
there except worker replica counts (replicas/minReplicas/maxReplicas, which the autoscaler
owns) starts a new RayCluster and moves traffic to it (twice the capacity meanwhile, under
upgradeStrategy NewCluster). A change only to `serveConfigV2` is applied to the running
cluster through the Serve REST API.
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
_REPLICA_COUNT = re.compile(
    rf"^{re.escape(CLUSTER)}\.workerGroupSpecs\[[^\]]+\]\.(replicas|minReplicas|maxReplicas)$"
)

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
    replica_changes: tuple[FieldChange, ...]  # worker replica bounds (no new cluster)
    other_changes: tuple[FieldChange, ...]  # metadata and spec fields outside both
    serve_changes: tuple[ServeChange, ...]
    upgrade_strategy: str | None

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


def rayservice_change(name: str, old: Mapping[str, Any] | None,
                      new: Mapping[str, Any] | None) -> RayServiceChange:
    strategy = as_mapping(as_mapping(as_mapping(new or old).get("spec")).get("upgradeStrategy"))
    upgrade = strategy.get("type")
    if old is None or new is None:
        return RayServiceChange(name, "created" if old is None else "deleted", (), (), (), (),
                                str(upgrade) if upgrade else None)
    changes = [c for c in field_changes(old, new) if c.path != SERVE_CONFIG]
    cluster = tuple(c for c in changes
                    if c.path.startswith(f"{CLUSTER}.") and not _REPLICA_COUNT.match(c.path))
    replicas = tuple(c for c in changes if _REPLICA_COUNT.match(c.path))
    other = tuple(c for c in changes if c not in cluster and c not in replicas)
    serve = tuple(serve_config_changes(_serve_document(old), _serve_document(new)))
    if cluster:
        rollout: Rollout = "new cluster"
    elif serve or replicas or other:
        rollout = "in place"
    else:
        rollout = "no change"
    return RayServiceChange(name, rollout, cluster, replicas, other, serve,
                            str(upgrade) if upgrade else None)
