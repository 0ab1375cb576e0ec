"""The Serve config a rehearsal deploys: the stack's serveConfigV2, changed only where
fake nodes sharing one machine's network force it, each change stated for the report."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.config import HttpOptions
from servestack.local.head import LOOPBACK

LOAD_STEP_UPSCALE_DELAY_S = 5.0
LOAD_STEP_DOWNSCALE_DELAY_S = 15.0


@dataclass(frozen=True)
class RehearsalServeConfig:
    document: dict[str, Any]
    differences: tuple[str, ...]


def rehearsal_serve_config(serve_config: Mapping[str, Any], http_port: int, ingress: str,
                           short_delays: bool = False) -> RehearsalServeConfig:
    """Proxy on the head only and HTTP on loopback: every fake node shares this machine's
    ports, so Serve's per-node proxies (`ingress`: HAProxy or Serve's Python proxy) would
    collide. With `short_delays` (the load step), autoscaling delays shrink so scale-up and
    scale-down fit in minutes."""
    document = copy.deepcopy(dict(serve_config))
    differences = []
    location = document.get("proxy_location", "EveryNode")
    if location != "HeadOnly":
        document["proxy_location"] = "HeadOnly"
        on_cluster = {"EveryNode": f"{ingress} on every node"}.get(location, "no proxy")
        differences.append(f"ingress: {ingress} on the head only, Serve proxy_location HeadOnly "
                           f"(cluster: {on_cluster}, proxy_location {location}): fake nodes "
                           "share this machine's ports, so per-node proxies would collide")
    http = dict(document.get("http_options") or {})
    default = HttpOptions()  # Serve's, as the stack's
    differences.append(f"Serve HTTP on {LOOPBACK}:{http_port} (cluster: "
                       f"{http.get('host', default.host)}:{http.get('port', default.port)})")
    http.update(host=LOOPBACK, port=http_port)
    document["http_options"] = http
    if short_delays:
        changed = []
        for app in document.get("applications", []):
            for dep in app.get("deployments", []):
                scaling = dep.get("autoscaling_config")
                if not scaling:
                    continue
                up = min(float(scaling.get("upscale_delay_s", 30.0)), LOAD_STEP_UPSCALE_DELAY_S)
                down = min(float(scaling.get("downscale_delay_s", 600.0)),
                           LOAD_STEP_DOWNSCALE_DELAY_S)
                scaling.update(upscale_delay_s=up, downscale_delay_s=down)
                changed.append(f"{app['name']}.{dep['name']}")
        if changed:
            differences.append(
                f"load step: Serve upscale_delay_s ≤ {LOAD_STEP_UPSCALE_DELAY_S:g} and "
                f"downscale_delay_s ≤ {LOAD_STEP_DOWNSCALE_DELAY_S:g} for "
                + ", ".join(changed))
    return RehearsalServeConfig(document=document, differences=tuple(differences))
