"""What Ray pods need to read the stack's models: cache volume, environment, egress, identity.

Everything is derived from two places: the apps' model URIs (which buckets, which schemes;
`StackConfig.model_uris`) and `model_sources` (endpoints, addresses, the cache volume). What
sits in the pod templates (cache volume, environment, service account) follows from
`model_sources` alone, so apps that load remote models come and go in place; the buckets
and egress, which the URIs decide, are objects of their own. A stack without `model_sources`
gets none of it.
Secrets are referenced, never copied: the MLflow token lives in a Secret made from a Pulumi
secret (infra/model_access_resources.py), S3 keys in a Secret the stack names. Pure: the
worker groups and the policy pack use it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from apps.model_source.environment import (
    CACHE_DIR_ENV,
    CACHE_MAX_BYTES_ENV,
    MLFLOW_TOKEN_ENV,
    MLFLOW_TRACKING_URI_ENV,
    S3_ENDPOINT_ENV,
)
from apps.model_source.uri import ObjectStoreUri, object_store_uris
from infra.config import StackConfig
from infra.quantities import memory_quantity

MODEL_CACHE_VOLUME = "model-cache"
MODEL_CACHE_MOUNT = "/var/cache/servestack/models"
MLFLOW_TOKEN_KEY = "token"
EPHEMERAL_STORAGE = "ephemeral-storage"


def uses_model_sources(stack: StackConfig) -> bool:
    return stack.declares_model_sources


def model_buckets(stack: StackConfig, scheme: str) -> tuple[ObjectStoreUri, ...]:
    """The s3:// or gs:// locations the apps read, from their URIs (sorted, unique)."""
    return tuple(uri for uri in object_store_uris(stack.model_uris) if uri.scheme == scheme)


def ray_service_account(stack: StackConfig) -> str:
    """The Kubernetes ServiceAccount of the Ray pods, the one cloud identities bind to."""
    return f"{stack.rayservice.name}-ray"


def mlflow_token_secret(stack: StackConfig) -> str:
    return f"{stack.rayservice.name}-mlflow-token"


def cache_max_bytes(stack: StackConfig) -> int:
    """Half the volume: the other half holds a download in progress before eviction runs."""
    return int(stack.model_sources.cache.size) // 2


def model_environment(stack: StackConfig) -> list[dict[str, Any]]:
    """The variables apps/model_source reads, in the clients' own names; secrets by ref."""
    if not uses_model_sources(stack):
        return []
    sources = stack.model_sources
    env: list[dict[str, Any]] = [
        {"name": CACHE_DIR_ENV, "value": MODEL_CACHE_MOUNT},
        {"name": CACHE_MAX_BYTES_ENV, "value": str(cache_max_bytes(stack))},
    ]
    if sources.s3_endpoint:
        env.append({"name": S3_ENDPOINT_ENV, "value": sources.s3_endpoint})
    if sources.s3_credentials_secret:
        env += [{"name": key, "valueFrom": {"secretKeyRef": {
            "key": key, "name": sources.s3_credentials_secret}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    if sources.mlflow_tracking_uri:
        env.append({"name": MLFLOW_TRACKING_URI_ENV, "value": sources.mlflow_tracking_uri})
    if stack.mlflow_token_key:
        env.append({"name": MLFLOW_TOKEN_ENV, "valueFrom": {"secretKeyRef": {
            "key": MLFLOW_TOKEN_KEY, "name": mlflow_token_secret(stack)}}})
    return sorted(env, key=lambda entry: str(entry["name"]))


def cache_volume(stack: StackConfig) -> dict[str, Any]:
    cache = stack.model_sources.cache
    if cache.volume == "hostPath":
        return {"hostPath": {"path": cache.host_path, "type": "DirectoryOrCreate"},
                "name": MODEL_CACHE_VOLUME}
    if cache.volume == "persistentVolumeClaim":
        return {"name": MODEL_CACHE_VOLUME,
                "persistentVolumeClaim": {"claimName": cache.claim_name}}
    return {"emptyDir": {"sizeLimit": memory_quantity(int(cache.size))},
            "name": MODEL_CACHE_VOLUME}


def worker_pod_additions(stack: StackConfig) -> dict[str, Any]:
    """Pod-spec fields a worker pod gains when the stack declares model_sources."""
    if not uses_model_sources(stack):
        return {}
    return {"serviceAccountName": ray_service_account(stack), "volumes": [cache_volume(stack)]}


def worker_volume_mounts(stack: StackConfig) -> list[dict[str, str]]:
    if not uses_model_sources(stack):
        return []
    return [{"mountPath": MODEL_CACHE_MOUNT, "name": MODEL_CACHE_VOLUME}]


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def model_egress(stack: StackConfig) -> list[dict[str, Any]]:
    """NetworkPolicy egress rules to exactly the object store and MLflow the apps use."""
    schemes = {urlsplit(uri).scheme for uri in stack.model_uris}
    sources = stack.model_sources
    rules: list[dict[str, Any]] = []
    if schemes & {"s3", "gs"} and sources.object_store_cidrs:
        port = _port(sources.s3_endpoint) if sources.s3_endpoint and "s3" in schemes else 443
        rules.append({"ports": [{"port": port, "protocol": "TCP"}],
                      "to": [{"ipBlock": {"cidr": cidr}} for cidr in sources.object_store_cidrs]})
    if "mlflow" in schemes and sources.mlflow_tracking_uri and sources.mlflow_cidrs:
        rules.append({"ports": [{"port": _port(sources.mlflow_tracking_uri), "protocol": "TCP"}],
                      "to": [{"ipBlock": {"cidr": cidr}} for cidr in sources.mlflow_cidrs]})
    return rules
