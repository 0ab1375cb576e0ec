"""The RayService component: one KubeRay RayService carrying the stack's Serve config.

The manifest is built by a pure function (`rayservice_manifest`) so tests, `render` and the
policies read exactly what Pulumi applies; the component adds only what needs Pulumi: the
Redis password and Ray auth token Secrets, readiness, and leaving worker replica counts to
the autoscaler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.capacity import CapacityPlan
from infra.config import StackConfig
from infra.names import serve_service_name
from infra.serve_config import to_yaml
from infra.upgrade_plan import cluster_deletion_delay_s, cluster_upgrade_options, upgrade_plan
from infra.worker_groups import ray_cluster_config, rayservice_labels

RAYSERVICE_COMPONENT = "servestack:index:RayService"
API_VERSION = "ray.io/v1"
KIND = "RayService"
REDIS_PASSWORD_KEY = "password"
AUTH_TOKEN_KEY = "auth_token"  # the data key KubeRay's authOptions.secretName must hold
AUTH_TOKEN_LENGTH = 48
READY_TIMEOUT_S = 30 * 60  # image pulls plus a GPU node scale-up plus model loads
READY_TIMEOUT = f"{READY_TIMEOUT_S // 60}m"
INITIALIZING_TIMEOUT_ANNOTATION = "ray.io/initializing-timeout"
"""KubeRay gives up a new RayCluster that is not ready within this (a Go duration)."""
IGNORED_CHANGES = ["spec.rayClusterConfig.workerGroupSpecs[*].replicas"]
"""The in-tree autoscaler writes replicas; Pulumi must not reset them on every `up`."""
WAIT_FOR = ["condition=Ready", "condition=UpgradeInProgress=False"]
"""What `pulumi up` waits for (pulumi-kubernetes >= 4.18 `pulumi.com/waitFor`, all must hold).

pulumi-kubernetes only accepts a condition whose `observedGeneration` (KubeRay 1.7 stamps it
on the status and on every condition) has caught up with the spec just applied, so the old
cluster's `Ready=True` no longer ends the wait early. `UpgradeInProgress=False` means no
pending cluster is left: during a NewCluster upgrade KubeRay promotes the pending RayCluster
only once every Serve application on it is RUNNING, and then points the serve Service at it.
`Ready` means the serve Service has at least one endpoint. A change that KubeRay applies in
place (serveConfigV2 alone) keeps the same cluster: `up` then returns once the operator has
seen the new generation, while Serve may still be rolling the applications out.
"""
DELETION_ANNOTATIONS = {"pulumi.com/deletionPropagationPolicy": "foreground"}
"""Spelled out although it is pulumi-kubernetes' default: `destroy` waits until the RayService
object is gone, which KubeRay's `ray.io/rayservice-finalizer` holds back until every RayCluster
(and its GCS fault-tolerance Redis cleanup) has been removed."""


def wait_message(stack: StackConfig) -> str:
    """What `pulumi up` is waiting for on the RayService, in KubeRay's condition names, so a
    long wait (a GPU node scale-up, a model load, an upgrade's steps) reads as progress."""
    name, namespace = stack.rayservice.name, stack.namespace
    return (f"pulumi up waits up to {READY_TIMEOUT} for RayService {namespace}/{name}: "
            "condition Ready (its Serve Service has an endpoint) and UpgradeInProgress=False "
            f"(no pending cluster: a {stack.rayservice.upgrade_strategy} rollout, or a "
            "RollbackInProgress rollback, has finished). Watch it: kubectl -n "
            f"{namespace} get rayservice {name} -o jsonpath='{{.status.conditions}}'")


def head_excluded_from_serve(stack: StackConfig) -> bool:
    """Keep the head out of the serve Service unless it runs the only proxy.

    The head runs no replicas (num-cpus 0) yet Serve starts a proxy on every node. With
    `excludeHeadPodFromServeSvc` KubeRay 1.7 labels the head `ray.io/serve=false` and skips
    its own probe of `<head IP>:serve/-/healthz` (rayservice_controller.go,
    updateHeadPodServeLabel), so the serve Service holds workers only and the operator needs
    no path to the head's serve port. With `proxy_location: HeadOnly` the head is the only
    proxy: it stays in, and the NetworkPolicies let the operator probe it.
    """
    return stack.serve.proxy_location != "HeadOnly"


def serve_endpoint(stack: StackConfig) -> str:
    host = f"{serve_service_name(stack.rayservice.name)}.{stack.namespace}.svc.cluster.local"
    return f"http://{host}:{stack.serve.http.port}"


def redis_secret_name(stack: StackConfig) -> str:
    return f"{stack.rayservice.name}-redis"


def auth_secret_name(stack: StackConfig) -> str:
    return f"{stack.rayservice.name}-ray-auth"


def auth_options(stack: StackConfig) -> dict[str, Any] | None:
    """Ray token auth: KubeRay puts RAY_AUTH_MODE/RAY_AUTH_TOKEN from our Secret into every
    Ray container and uses the token itself for the dashboard. `enableK8sTokenAuth` stays
    off: KubeRay 1.7 documents it as unsupported for RayService."""
    if not stack.security.ray_token_auth:
        return None
    return {"mode": "token", "secretName": auth_secret_name(stack)}


def gcs_fault_tolerance_options(stack: StackConfig) -> dict[str, Any] | None:
    ft = stack.rayservice.gcs_fault_tolerance
    if not ft.enabled:
        return None
    return {
        "redisAddress": ft.redis_address,
        "redisPassword": {"valueFrom": {"secretKeyRef": {
            "key": REDIS_PASSWORD_KEY, "name": redis_secret_name(stack)}}},
    }


def initializing_timeout_s(stack: StackConfig) -> int:
    """What the stack says, else what `pulumi up` waits: KubeRay then gives up the cluster
    no later than the wait does."""
    written = stack.rayservice.initializing_timeout_s
    return written if written is not None else READY_TIMEOUT_S


def upgrade_strategy(stack: StackConfig, plan: CapacityPlan) -> dict[str, Any]:
    """`spec.upgradeStrategy`, its incremental steps sized by the upgrade plan."""
    strategy: dict[str, Any] = {"type": stack.rayservice.upgrade_strategy}
    options = cluster_upgrade_options(stack, upgrade_plan(stack, plan))
    if options is not None:
        strategy["clusterUpgradeOptions"] = options
    return strategy


def rayservice_manifest(
    stack: StackConfig, plan: CapacityPlan, serve_config: Mapping[str, Any],
) -> dict[str, Any]:
    """The RayService object, deterministic (sorted serveConfigV2) so diffs show real change."""
    cluster = ray_cluster_config(stack, plan)
    ft = gcs_fault_tolerance_options(stack)
    if ft is not None:
        cluster["gcsFaultToleranceOptions"] = ft
    auth = auth_options(stack)
    if auth is not None:
        cluster["authOptions"] = auth
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "annotations": {**DELETION_ANNOTATIONS,
                            INITIALIZING_TIMEOUT_ANNOTATION: f"{initializing_timeout_s(stack)}s",
                            "pulumi.com/waitFor": json.dumps(WAIT_FOR)},
            "labels": rayservice_labels(stack),
            "name": stack.rayservice.name,
            "namespace": stack.namespace,
        },
        "spec": {
            "excludeHeadPodFromServeSvc": head_excluded_from_serve(stack),
            "rayClusterConfig": cluster,
            "rayClusterDeletionDelaySeconds": cluster_deletion_delay_s(stack),
            "serveConfigV2": to_yaml(dict(serve_config)),
            "upgradeStrategy": upgrade_strategy(stack, plan),
        },
    }


@dataclass(frozen=True)
class RayServiceArgs:
    stack: StackConfig
    plan: CapacityPlan
    serve_config: Mapping[str, Any]
    redis_password: pulumi.Output[str] | None = None  # secret; required with GCS fault tolerance
    outlived_by: Sequence[pulumi.Resource] = ()
    """Created before the RayService object and deleted only after it is gone: the operator
    (it runs the RayService and GCS fault-tolerance finalizers) and the NetworkPolicies (they
    let the Redis cleanup Job reach DNS and Redis)."""


class RayService(pulumi.ComponentResource):
    """A RayService, its Redis password Secret, and where clients reach Serve."""

    name: pulumi.Output[str]
    serve_service: pulumi.Output[str]
    serve_endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: RayServiceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(RAYSERVICE_COMPONENT, name, None, opts)
        stack = args.stack
        manifest = rayservice_manifest(stack, args.plan, args.serve_config)
        depends_on: list[pulumi.Resource] = list(args.outlived_by)
        if stack.rayservice.gcs_fault_tolerance.enabled:
            if args.redis_password is None:
                raise ValueError("GCS fault tolerance is enabled but no Redis password was given")
            depends_on.append(k8s.core.v1.Secret(
                f"{name}-redis",
                metadata={"labels": rayservice_labels(stack), "name": redis_secret_name(stack),
                          "namespace": stack.namespace},
                type="Opaque",
                string_data={REDIS_PASSWORD_KEY: args.redis_password},
                opts=pulumi.ResourceOptions(parent=self),
            ))
        if stack.security.ray_token_auth:
            depends_on.append(self._auth_secret(name, stack))
        resource = k8s.apiextensions.CustomResource(
            name,
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                ignore_changes=IGNORED_CHANGES,
                custom_timeouts=pulumi.CustomTimeouts(create=READY_TIMEOUT, update=READY_TIMEOUT),
            ),
        )
        pulumi.log.info(wait_message(stack), resource=resource)
        # Derived from the resource's id so consumers wait until the RayService is Ready.
        self.name = resource.id.apply(lambda _: stack.rayservice.name)
        self.serve_service = pulumi.Output.from_input(serve_service_name(stack.rayservice.name))
        self.serve_endpoint = pulumi.Output.from_input(serve_endpoint(stack))
        self.register_outputs({
            "name": self.name,
            "serveEndpoint": self.serve_endpoint,
            "serveService": self.serve_service,
        })

    def _auth_secret(self, name: str, stack: StackConfig) -> k8s.core.v1.Secret:
        """A random token kept only in Pulumi state (encrypted) and this Secret."""
        token = random.RandomPassword(
            f"{name}-ray-auth-token", length=AUTH_TOKEN_LENGTH, special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return k8s.core.v1.Secret(
            f"{name}-ray-auth",
            metadata={"labels": rayservice_labels(stack), "name": auth_secret_name(stack),
                      "namespace": stack.namespace},
            type="Opaque",
            string_data={AUTH_TOKEN_KEY: token.result},
            opts=pulumi.ResourceOptions(parent=self),
        )
