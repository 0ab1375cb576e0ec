"""The env of every Ray process that may serve HTTP: the ingress layer's settings and, under
`serve.haproxy`, Ray's HAProxy switch and knobs. The local head, the rehearsal and every
RayService pod get it from here, so they run the same ingress.

It is derived from the stack-wide `serve` options only, never from the apps: it sits in every
pod template, where anything app-specific would make adding an app a new Ray cluster. An
app's own ingress settings travel in its runtime_env (ApplicationSpec.env_vars)."""

from __future__ import annotations

import math

from apps.haproxy_config import BINARY_ENV, WRAPPER_SCRIPT
from apps.ingress_settings import CALLBACK, CALLBACK_ENV, INGRESS_ENV
from infra.config import ServeOptions

IMAGE_HAPROXY_WRAPPER = f"/home/ray/servestack/bin/{WRAPPER_SCRIPT}"
"""Where the Dockerfile links the HAProxy config wrapper Ray starts in place of HAProxy."""


def ingress_environment(serve: ServeOptions) -> dict[str, str]:
    """Env of every Ray process that may serve HTTP: Ray calls apps.ingress in its Python
    proxies and, under HAProxy, in each ingress replica's own HTTP server, with the stack's
    `serve.ingress`."""
    return {CALLBACK_ENV: CALLBACK, INGRESS_ENV: serve.ingress.model_dump_json(),
            **haproxy_environment(serve)}


HAPROXY_ENABLE_ENV = "RAY_SERVE_ENABLE_HA_PROXY"
HAPROXY_METRICS_PORT = 9101
"""Ray's default (RAY_SERVE_HAPROXY_METRICS_PORT), written out so the container port, the
NetworkPolicy and the env all name this one number."""
HAPROXY_RETRY_ON = "conn-failure empty-response junk-response"
"""HAProxy's L7 retry triggers: no connection, the replica closed without a byte of response
or with an incomplete one (it died under the request). Ray's default is conn-failure only."""
HAPROXY_RETRIES = 2
PROXY_HEALTH_CHECK_PERIOD_ENV = "RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S"
PROXY_HEALTH_CHECK_PERIOD_S = 1
"""How often Ray's controller asks each HAProxy `show info` (Ray's default: 10 s). Three
misses replace the proxy, so a dead HAProxy is replaced after ~3 s instead of ~30 s, and the
bridge that serves meanwhile (apps/haproxy_bridge.py), on the routes of the moment it died,
hands over that much sooner. One admin-socket round trip a second per node costs nothing."""
DRAIN_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"
"""Read by Ray's controller and every ingress replica: the head's env and the pods' env."""


def haproxy_environment(serve: ServeOptions) -> dict[str, str]:
    """Ray's HAProxy switch and the knobs its template reads (ray/serve/_private/constants.py),
    derived from `serve.ingress`; empty when `serve.haproxy` is off.

    `timeout client` (idle client) is the body timeout, so a stalled client is cut off by
    HAProxy too, not only by apps.ingress in the replica. Retries on an empty response stand
    in for apps.ingress's retry, which cannot run once the replica holding it is dead; the
    image's config wrapper (apps/haproxy_config.py) keeps requests replayable and errors JSON."""
    if not serve.haproxy:
        return {}
    env = {
        HAPROXY_ENABLE_ENV: "1",
        BINARY_ENV: IMAGE_HAPROXY_WRAPPER,
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(HAPROXY_METRICS_PORT),
        "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": str(math.ceil(serve.ingress.body_timeout_s)),
        PROXY_HEALTH_CHECK_PERIOD_ENV: str(PROXY_HEALTH_CHECK_PERIOD_S),
        DRAIN_ENV: str(serve.ingress_drain_s),
    }
    if serve.ingress.retry_idempotent:
        env["RAY_SERVE_HAPROXY_RETRY_ON"] = HAPROXY_RETRY_ON
        env["RAY_SERVE_HAPROXY_RETRIES"] = str(HAPROXY_RETRIES)
    return env
