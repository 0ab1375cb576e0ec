"""The ingress layer's settings, apart from its middleware (apps/ingress.py): the stack
config parses `serve.ingress` without importing starlette, and the program writes
$SERVESTACK_INGRESS from the same model the proxy reads it with.

Only stack-wide settings sit in the pods' env: what one app needs (its idempotent paths)
travels in its own runtime_env (apps.spec.IDEMPOTENT_PATHS_ENV), inside serveConfigV2, so
adding, removing or changing an app leaves the pod templates, and the Ray cluster, alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import ByteSize, Field

from apps.quantity import Size
from apps.spec import IDEMPOTENT_PATHS_ENV, SpecModel

INGRESS_ENV = "SERVESTACK_INGRESS"
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "apps.ingress:proxy_middlewares"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENT_HEADER = b"servestack-idempotent"
"""Set by an app's replica (apps/http_contract.py) on its answer to a POST to one of its
idempotent paths; the ingress (apps/ingress.py) learns the path from it and strips it."""


class IngressSettings(SpecModel):
    """The stack's `serve.ingress`: limits the proxy enforces before a replica is involved."""

    body_timeout_s: float = Field(
        10.0, gt=0, le=600,
        description="Seconds a client has to send its whole request body; slower ones get "
        "408 and never reach a replica.",
    )
    max_body_bytes: Size = Field(
        ByteSize(16 * 1024**2), ge=1024,
        description="Bodies above this get 413 at the proxy; each app's max_request_bytes "
        "applies after it, so keep this at least as large.",
    )
    retry_idempotent: bool = Field(
        True, description="Retry an idempotent request once on another replica when its "
        "replica died under it (under serve.haproxy: HAProxy's retry-on empty-response, for "
        "every route; behind Ray's Python proxy: GET/HEAD/OPTIONS, and POSTs to a path an app "
        "declared idempotent once the proxy has seen one answer from it).",
    )


def settings_from_env(env: Mapping[str, str] | None = None) -> IngressSettings:
    raw = (env if env is not None else os.environ).get(INGRESS_ENV)
    return IngressSettings.model_validate_json(raw) if raw else IngressSettings()


def normalized_path(path: str) -> str:
    """`/embed/` and `/embed` are one route to the ingress."""
    return path.rstrip("/") or "/"


def idempotent_paths_from_env(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The paths below its route prefix this replica's app declared idempotent."""
    raw = (env if env is not None else os.environ).get(IDEMPOTENT_PATHS_ENV)
    return frozenset(normalized_path(str(p)) for p in json.loads(raw)) if raw else frozenset()
