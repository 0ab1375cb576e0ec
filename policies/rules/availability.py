"""A production RayService survives a head restart and upgrades the way we chose, not by default.

Without GCS fault tolerance the head, the GCS and every Serve replica share one fate; an
implicit upgrade strategy means a field change rolls out whatever the operator defaults to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.pod_preview import RAYSERVICE_TYPE, as_mapping

UPGRADE_TYPES = ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")
DEPRECATED_FIELDS = ("serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold")


def check_gcs_fault_tolerance(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    if resource_type != RAYSERVICE_TYPE:
        return
    spec = as_mapping(props.get("spec"))
    cluster = as_mapping(spec.get("rayClusterConfig"))
    options = cluster.get("gcsFaultToleranceOptions", spec.get("gcsFaultToleranceOptions"))
    path = "spec.rayClusterConfig.gcsFaultToleranceOptions"
    if not isinstance(options, Mapping):
        yield (
            f"{path} is not set: a head restart loses the GCS and restarts every Serve replica. "
            "Enable servestack:rayservice.gcs_fault_tolerance with an external Redis address"
        )
        return
    if options.get("backend", "redis") == "rocksdb":
        if not options.get("storage"):
            yield f"{path}.storage is empty; the rocksdb backend needs persistent storage"
    elif not options.get("redisAddress"):
        yield f"{path}.redisAddress is empty; set it to the host:port of an external Redis"
    password = options.get("redisPassword")
    if isinstance(password, Mapping) and "value" in password:
        yield (
            f"{path}.redisPassword carries a literal value; reference a Secret with "
            "valueFrom.secretKeyRef so the password never sits in the RayService"
        )


def check_explicit_upgrade_strategy(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    if resource_type != RAYSERVICE_TYPE:
        return
    strategy = as_mapping(as_mapping(props.get("spec")).get("upgradeStrategy"))
    kind = strategy.get("type")
    if kind not in UPGRADE_TYPES:
        found = "is not set" if kind is None else f"is {kind!r}"
        yield (
            f"spec.upgradeStrategy.type {found}; choose one of {', '.join(UPGRADE_TYPES)} "
            "(servestack:rayservice.upgrade_strategy) so a cluster change rolls out as intended"
        )
    elif kind == "NewClusterWithIncrementalUpgrade" and not strategy.get("clusterUpgradeOptions"):
        yield (
            "spec.upgradeStrategy.clusterUpgradeOptions is missing; "
            "NewClusterWithIncrementalUpgrade needs it (and a Gateway API implementation)"
        )


def check_no_deprecated_rayservice_fields(
    resource_type: str, props: Mapping[str, Any]
) -> Iterator[str]:
    if resource_type != RAYSERVICE_TYPE:
        return
    spec = as_mapping(props.get("spec"))
    for field in DEPRECATED_FIELDS:
        if field in spec:
            yield (
                f"spec.{field} is deprecated and ignored by KubeRay 1.7; remove it "
                "(Serve health is judged from the Serve applications' status)"
            )
