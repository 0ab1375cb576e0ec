"""The stack's `rayservice` section: cluster-level knobs of the one RayService.

The worker groups are derived from the apps and pools (infra/capacity.py), never declared.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Self

from pydantic import ByteSize, Field, ValidationInfo, field_validator, model_validator

from apps.spec import SpecModel
from infra.config.resources import PodResources
from infra.field_types import DNS_LABEL, Cidr
from infra.quantities import gib
from infra.ray_internals import OBJECT_STORE_MINIMUM_BYTES

REDIS_PASSWORD_MEANING = "the password of the GCS fault-tolerance Redis"


class GcsFaultTolerance(SpecModel):
    """GCS state in Redis so Serve survives a head restart; the password is a Pulumi secret."""

    enabled: bool = Field(False, description="Keep Serve running across head restarts.")
    redis_address: str | None = Field(
        None, pattern=r"^[^\s:/]+:\d{1,5}$", description="host:port of an external Redis."
    )
    password_secret_key: str = Field(
        "redisPassword", description="Name of the secret Pulumi config key holding the password."
    )
    redis_cidrs: tuple[Cidr, ...] = Field(
        (), description="Addresses of the Redis endpoint, the only egress the NetworkPolicies "
        "give the GCS; derived when redis_address is an IP.",
    )

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


class AutoscalerConfig(SpecModel):
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


class RayServiceConfig(SpecModel):
    """Cluster-level knobs of the one RayService; the worker groups are derived, not declared."""

    name: str = Field(
        "servestack", pattern=DNS_LABEL,
        description="RayService name; the Serve Service is `<name>-serve-svc`.",
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
    object_store_memory: ByteSize | None = Field(
        None, validate_default=True,
        description="Ray's object store per worker pod (rayStartParams object-store-memory), "
        "out of worker_overhead.memory; default: half of it.",
    )
    max_replicas_per_pod: int = Field(
        4, ge=1, description="Upper bound on replicas packed into one worker pod."
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

    @field_validator("upgrade_strategy")
    @classmethod
    def _modelled_strategy(cls, value: str) -> str:
        if value == "NewClusterWithIncrementalUpgrade":
            raise ValueError(
                "NewClusterWithIncrementalUpgrade needs upgradeStrategy.clusterUpgradeOptions "
                "(a Gateway API class, step size and interval), which servestack does not "
                "model yet; use NewCluster (or None)"
            )
        return value


    def required_secrets(self) -> dict[str, str]:
        """Secret config keys the RayService reads → what they hold."""
        ft = self.gcs_fault_tolerance
        return {ft.password_secret_key: REDIS_PASSWORD_MEANING} if ft.enabled else {}


def _object_store_bytes(configured: int | None, overhead: PodResources) -> int:
    return int(configured) if configured is not None else int(overhead.memory) // 2
