"""The stack's `rayservice` section: cluster-level knobs of the one RayService.

The worker groups are derived from the apps and pools (infra/capacity.py), never declared.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final, Literal, Self

from pydantic import ByteSize, Field, ValidationInfo, field_validator, model_validator

from apps import kubernetes_rules as k8s
from apps.quantity import Memory
from apps.spec import SpecModel
from infra.config.resources import KeepsPodDefaults, PodResources
from infra.config.secret_keys import NamesSecret, named_secrets
from infra.field_types import Cidr
from infra.quantities import gib
from infra.ray_internals import OBJECT_STORE_MINIMUM_BYTES

REDIS_PASSWORD_MEANING = "the password of the GCS fault-tolerance Redis"
MAX_RAYSERVICE_NAME: Final = 47
"""KubeRay's limit (MaxRayServiceNameLength): its cluster name adds 6 characters and the
longest Service suffix, `-serve-svc`, must still fit a 63-character DNS-1035 label."""


class GcsFaultTolerance(SpecModel):
    """GCS state in Redis so Serve survives a head restart; the password is a Pulumi secret."""

    enabled: bool = Field(False, description="Keep Serve running across head restarts.")
    redis_address: str | None = Field(
        None, pattern=r"^[^\s:/]+:\d{1,5}$", description="host:port of an external Redis."
    )
    password_secret_key: Annotated[str, NamesSecret(REDIS_PASSWORD_MEANING)] = Field(
        "redisPassword", description="Name of the secret Pulumi config key holding the password."
    )
    redis_cidrs: tuple[Cidr, ...] = Field(
        (), description="Addresses of the Redis endpoint, the only egress the NetworkPolicies "
        "give the GCS; derived when redis_address is an IP.",
    )

    @field_validator("redis_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        """The GCS resolves the host and the NetworkPolicy opens the port: both must be
        what Kubernetes takes, a DNS-1123 subdomain or an IP, and a port number."""
        if value is None:
            return value
        host, _, port = value.rpartition(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            k8s.raise_problems(host, k8s.hostname(host))
        k8s.raise_problems(int(port), k8s.port_number(int(port)))
        return value

    @model_validator(mode="after")
    def _address(self) -> Self:
        if self.enabled and not self.redis_address:
            raise ValueError("gcs_fault_tolerance.enabled needs redis_address (host:port)")
        return self

    @property
    def redis_egress_cidrs(self) -> tuple[str, ...]:
        """`redis_cidrs`, or the address itself when `redis_address` is an IP literal."""
        if self.redis_cidrs or not self.redis_address:
            return self.redis_cidrs
        host = self.redis_address.rsplit(":", 1)[0]
        try:
            return (str(ipaddress.ip_network(host)),)
        except ValueError:
            return ()

    @property
    def redis_port(self) -> int | None:
        return int(self.redis_address.rsplit(":", 1)[1]) if self.redis_address else None


class AutoscalerConfig(KeepsPodDefaults):
    idle_timeout_s: int = Field(
        60, ge=0, description="Seconds an idle worker pod lives before removal."
    )
    upscaling_mode: Literal["Default", "Aggressive", "Conservative"] = Field(
        "Default", description="How fast the autoscaler adds pods."
    )
    resources: PodResources = Field(
        PodResources(cpu=0.5, memory=ByteSize(512 * 1024**2)),
        description="Autoscaler sidecar requests = limits.",
    )


class ClusterUpgradeOptions(SpecModel):
    """KubeRay's `clusterUpgradeOptions` for NewClusterWithIncrementalUpgrade; each field left
    out is derived (infra/upgrade_plan.py), each one written is checked against the same
    arithmetic. The gateway class always comes from `gateway`."""

    max_surge_percent: int | None = Field(
        None, ge=1, le=100, description="Capacity the new cluster gains per step; default: "
        "the largest step whose extra pods fit the pools' max_nodes at the stack's max.",
    )
    step_size_percent: int | None = Field(
        None, ge=1, le=100, description="Traffic moved per interval (at most "
        "max_surge_percent); default: max_surge_percent.",
    )
    interval_seconds: int | None = Field(
        None, ge=1, description="Seconds between traffic moves; default: the slowest "
        "deployment's health check period plus timeout, or its upscale delay if longer.",
    )


class RayServiceConfig(KeepsPodDefaults):
    """Cluster-level knobs of the one RayService; the worker groups are derived, not declared."""

    name: str = Field(
        "servestack", description="RayService name; the Serve Service is `<name>-serve-svc`.",
    )
    upgrade_strategy: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"] = Field(
        description="How a cluster-level change rolls out (explicit)."
    )
    head: PodResources = Field(
        PodResources(cpu=1, memory=ByteSize(4 * 1024**3)),
        description="Head container requests = limits (the head runs no replicas).",
    )
    worker_overhead: PodResources = Field(
        PodResources(cpu=0.5, memory=ByteSize(1024**3)),
        description="Per worker pod on top of its replicas: raylet, agents and object store.",
    )
    object_store_memory: Memory | None = Field(
        None, validate_default=True,
        description="Ray's object store per worker pod (rayStartParams object-store-memory), "
        "out of worker_overhead.memory; default: half of it.",
    )
    max_replicas_per_pod: None = Field(
        None, description="Removed: a worker pod takes one node of its pool "
        "(docs/capacity.md), so it no longer depends on the apps; delete this key.",
    )
    cpu_pool: str | None = Field(
        None, description="Pool for the CPU worker group (may be tainted); default: the first "
        "pool without accelerator and taints. See docs/capacity.md.",
    )
    autoscaler: AutoscalerConfig = Field(
        AutoscalerConfig(), description="In-tree autoscaler sidecar."
    )
    gcs_fault_tolerance: GcsFaultTolerance = Field(
        GcsFaultTolerance(), description="GCS state in an external Redis."
    )
    upgrade: ClusterUpgradeOptions = Field(
        ClusterUpgradeOptions(), description="Steps of a NewClusterWithIncrementalUpgrade "
        "(KubeRay clusterUpgradeOptions); see docs/upgrades.md.",
    )
    cluster_deletion_delay_s: int | None = Field(
        None, ge=0, description="Seconds the old RayCluster lives after traffic left it "
        "(rayClusterDeletionDelaySeconds); default: the longest graceful shutdown of a "
        "replica plus the ingress drain.",
    )
    initializing_timeout_s: int | None = Field(
        None, ge=60, description="Seconds a new RayCluster may take to become ready before "
        "KubeRay gives it up (ray.io/initializing-timeout); default: what `pulumi up` waits.",
    )

    @model_validator(mode="after")
    def _upgrade_options_apply(self) -> Self:
        if self.upgrade != ClusterUpgradeOptions() and (
                self.upgrade_strategy != "NewClusterWithIncrementalUpgrade"):
            raise ValueError("rayservice.upgrade applies to upgrade_strategy "
                             "NewClusterWithIncrementalUpgrade only; remove it or switch")
        return self

    @field_validator("max_replicas_per_pod", mode="before")
    @classmethod
    def _removed(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                "worker pods are no longer sized in replicas: each takes one node of its "
                "pool (beside the head on the head's pool), so adding or removing an app "
                "stays in place; delete this key (docs/capacity.md, 'Pod size')")

    @field_validator("object_store_memory")
    @classmethod
    def _object_store_inside_overhead(cls, value: ByteSize | None, info: ValidationInfo
                                      ) -> ByteSize | None:
        """Uncapped, Ray's store takes 30% of the pod's memory from /dev/shm, beyond what the
        plan reserves; capped, it must leave the raylet and agents some of the overhead and
        be at least what Ray starts a node with."""
        overhead = info.data.get("worker_overhead")
        if overhead is None:
            return value
        store = _object_store_bytes(value, overhead)
        if store < OBJECT_STORE_MINIMUM_BYTES:
            raise ValueError(
                f"{gib(store)} is below the {gib(OBJECT_STORE_MINIMUM_BYTES)} Ray needs for "
                "an object store" + ("" if value is not None else
                                     " (half of rayservice.worker_overhead.memory)")
                + "; raise it or rayservice.worker_overhead.memory")
        if store >= overhead.memory:
            raise ValueError(
                f"{gib(store)} leaves nothing of rayservice.worker_overhead.memory "
                f"({gib(overhead.memory)}) for the raylet and agents; lower it or raise "
                "rayservice.worker_overhead.memory")
        return value

    @property
    def object_store_bytes(self) -> int:
        """Ray's object store per worker pod: the configured size, or half the overhead."""
        return _object_store_bytes(self.object_store_memory, self.worker_overhead)

    @field_validator("name")
    @classmethod
    def _kuberay_name(cls, value: str) -> str:
        """KubeRay refuses the RayService otherwise (ValidateRayServiceMetadata)."""
        problems = k8s.dns1035_label(value)
        if len(value) > MAX_RAYSERVICE_NAME:
            problems.append(f"must be no more than {MAX_RAYSERVICE_NAME} characters (KubeRay "
                            "appends to it for the cluster and its Services)")
        k8s.raise_problems(value, problems)
        return value


    def required_secrets(self) -> dict[str, str]:
        """Secret config keys the RayService reads → what they hold."""
        ft = self.gcs_fault_tolerance
        return named_secrets(GcsFaultTolerance, ft) if ft.enabled else {}


def _object_store_bytes(configured: int | None, overhead: PodResources) -> int:
    return int(configured) if configured is not None else int(overhead.memory) // 2
