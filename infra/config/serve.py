"""The stack's `serve` section: Serve's proxies and HTTP options, and servestack's ingress."""

from __future__ import annotations

from pydantic import Field

from apps.ingress_settings import IngressSettings
from apps.spec import ProxyLocation, SpecModel
from infra.field_types import Port
from infra.ray_defaults import SERVE_HTTP_PORT


class HttpOptions(SpecModel):
    """Ray's `http_options`, written into the Serve config as they are."""

    host: str = Field("0.0.0.0", description="Address the proxies bind.")
    port: Port = Field(
        SERVE_HTTP_PORT,
        description="Serve HTTP port (container port `serve`, the Service's port).",
    )
    request_timeout_s: float | None = Field(
        60.0, gt=0,
        description="Ray's proxy answers 408 when a request (body received) has no response "
        "after this long; null waits forever.",
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="Idle keep-alive connections of the proxies are closed after "
        "this long.",
    )


class ServeOptions(SpecModel):
    proxy_location: ProxyLocation = Field("EveryNode", description="Where Serve runs HTTP proxies.")
    http: HttpOptions = Field(HttpOptions(), description="Serve HTTP options.")
    ingress: IngressSettings = Field(
        IngressSettings(),
        description="servestack's ingress layer (apps/ingress.py): body timeout and size, "
        "retries; stack-wide, carried in every Ray pod's env as $SERVESTACK_INGRESS (an app's "
        "idempotent paths travel in its own runtime_env, so app changes stay in place).",
    )
    haproxy: bool = Field(
        True,
        description="Serve's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY=1): HAProxy on every "
        "node takes the HTTP port and sends requests straight to the ingress replicas' own "
        "HTTP servers, skipping the Python proxy hop. false: Ray's Python proxy.",
    )
    ingress_drain_s: float = Field(
        30.0, ge=0,
        description="Under serve.haproxy, seconds a stopping ingress replica stays reachable "
        "(RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S, Ray's default 30) so the HAProxy of "
        "every node drops it from its backends before it refuses connections; Ray waits 5 s "
        "more before a force-kill. One node needs only its own HAProxy's reload (about 1 s); a "
        "cluster needs the controller's broadcast to reach every node too.",
    )

