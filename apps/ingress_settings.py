"""The ingress layer's settings, apart from its middleware (apps/ingress.py): the stack
config parses `serve.ingress` without importing starlette, and the program writes
$SERVESTACK_INGRESS from the same model the proxy reads it with."""

from __future__ import annotations

import os

from pydantic import ByteSize, Field

from apps.spec import SpecModel

INGRESS_ENV = "SERVESTACK_INGRESS"
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "apps.ingress:proxy_middlewares"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class IngressSettings(SpecModel):
    """The stack's `serve.ingress`: limits the proxy enforces before a replica is involved."""

    body_timeout_s: float = Field(
        10.0, gt=0, le=600,
        description="Seconds a client has to send its whole request body; slower ones get "
        "408 and never reach a replica.",
    )
    max_body_bytes: ByteSize = Field(
        ByteSize(16 * 1024**2), ge=1024,
        description="Bodies above this get 413 at the proxy; each app's max_request_bytes "
        "applies after it, so keep this at least as large.",
    )
    retry_idempotent: bool = Field(
        True, description="Retry an idempotent request once on another replica when its "
        "replica died under it (under serve.haproxy: HAProxy's retry-on empty-response, for "
        "every route).",
    )


class IngressRuntime(SpecModel):
    """What $SERVESTACK_INGRESS carries: the settings plus the paths that may be retried."""

    settings: IngressSettings = IngressSettings()
    idempotent_paths: tuple[str, ...] = ()

    def retryable(self, method: str, path: str) -> bool:
        if not self.settings.retry_idempotent:
            return False
        if method in SAFE_METHODS:
            return True
        return method == "POST" and path.rstrip("/") in {p.rstrip("/") for p in
                                                          self.idempotent_paths}


def runtime_from_env(env: dict[str, str] | None = None) -> IngressRuntime:
    raw = (env if env is not None else os.environ).get(INGRESS_ENV)
    return IngressRuntime.model_validate_json(raw) if raw else IngressRuntime()
