"""The environment a replica reads its model sources from: set by the pod spec (infra).

Endpoints and credentials use the clients' own variables, so a pod needs nothing
servestack-specific to reach its store: `AWS_ENDPOINT_URL_S3` (S3-compatible endpoints),
`AWS_*` / Pod Identity / IRSA (S3), Workload Identity or `GOOGLE_APPLICATION_CREDENTIALS`
(GCS; `STORAGE_EMULATOR_HOST` for an emulator), `MLFLOW_TRACKING_URI` and
`MLFLOW_TRACKING_TOKEN` (MLflow). Only the cache is ours.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR_ENV = "SERVESTACK_MODEL_CACHE_DIR"
CACHE_MAX_BYTES_ENV = "SERVESTACK_MODEL_CACHE_MAX_BYTES"
S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_S3"
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"

DEFAULT_CACHE_MAX_BYTES = 10 * 1024**3


@dataclass(frozen=True)
class CacheLocation:
    """Where this node caches models and how much it may keep there."""

    root: Path
    max_bytes: int


def cache_location() -> CacheLocation:
    """From the environment; off a cluster, a per-user directory under the temp dir."""
    root = os.environ.get(CACHE_DIR_ENV) or str(
        Path(tempfile.gettempdir()) / f"servestack-model-cache-{os.getuid()}"
    )
    raw = os.environ.get(CACHE_MAX_BYTES_ENV)
    try:
        max_bytes = int(raw) if raw else DEFAULT_CACHE_MAX_BYTES
    except ValueError:
        raise ValueError(f"{CACHE_MAX_BYTES_ENV}={raw!r} is not a number of bytes") from None
    return CacheLocation(root=Path(root), max_bytes=max_bytes)
