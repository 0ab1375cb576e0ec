"""The front door as rendered: TLS on a public Gateway, and an HTTPRoute that routes exactly
the Serve applications' prefixes to the Serve Service.

Checked on the objects Pulumi would apply, not on the stack: an edited manifest, or a
program change that drifts from the apps, is caught before any client meets it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from infra.config import PROJECT, StackConfig
from infra.names import GATEWAY_API_VERSION, serve_service_name
from infra.pod_preview import RAYSERVICE_TYPE, as_list, as_mapping

Finding = tuple[str, str | None]
GATEWAY_TYPE = f"kubernetes:{GATEWAY_API_VERSION}:Gateway"
HTTP_ROUTE_TYPE = f"kubernetes:{GATEWAY_API_VERSION}:HTTPRoute"


def check_tls_on_internet_facing_listeners(resources: Sequence[Any],
                                           stack: StackConfig) -> Iterator[Finding]:
    """Every listener of a Gateway whose address is public terminates TLS with a certificate;
    whether it is public comes from the platform's class or `gateway.internet_facing`."""
    if not stack.cluster.gateway_faces_internet(stack.gateway):
        return
    for resource in resources:
        if resource.resource_type != GATEWAY_TYPE:
            continue
        spec = as_mapping(resource.props.get("spec"))
        for index, listener in enumerate(as_list(spec.get("listeners"))):
            entry = as_mapping(listener)
            name = entry.get("name", index)
            tls = as_mapping(entry.get("tls"))
            certificates = as_list(tls.get("certificateRefs"))
            if entry.get("protocol") != "HTTPS" or tls.get("mode", "Terminate") != "Terminate" \
                    or not certificates:
                yield (f"spec.listeners[{name}] of Gateway {spec.get('gatewayClassName')!r} "
                       f"faces the internet but is {entry.get('protocol')} without a "
                       "terminating certificate: make it HTTPS with "
                       f"{PROJECT}:gateway.listeners[{name}].tls (a Secret or a cert-manager "
                       "issuer)", resource.urn)


def _route_prefixes(resources: Sequence[Any]) -> set[str] | None:
    """The Serve applications' route prefixes, from the rendered serveConfigV2."""
    for resource in resources:
        if resource.resource_type != RAYSERVICE_TYPE:
            continue
        raw = as_mapping(resource.props.get("spec")).get("serveConfigV2")
        document = yaml.safe_load(raw) if isinstance(raw, str) else None
        if isinstance(document, Mapping):
            return {str(as_mapping(app).get("route_prefix", "/"))
                    for app in as_list(document.get("applications"))}
    return None


def check_httproute_covers_app_routes(resources: Sequence[Any],
                                      stack: StackConfig) -> Iterator[Finding]:
    """The HTTPRoute matches each app's prefix and nothing else, and sends it to the Serve
    Service on Serve's port: a missing prefix is an app nobody reaches, an extra one a path
    that leaves the front door for no app."""
    prefixes = _route_prefixes(resources)
    if prefixes is None:
        return
    service = serve_service_name(stack.rayservice.name)
    port = stack.serve.http.port
    for resource in resources:
        if resource.resource_type != HTTP_ROUTE_TYPE:
            continue
        routed: set[str] = set()
        for index, rule in enumerate(as_list(as_mapping(resource.props.get("spec")).get("rules"))):
            entry = as_mapping(rule)
            for match in as_list(entry.get("matches")):
                path = as_mapping(as_mapping(match).get("path"))
                routed.add(str(path.get("value", "/")))
            for backend in as_list(entry.get("backendRefs")):
                ref = as_mapping(backend)
                if ref.get("name") != service or ref.get("port") != port:
                    yield (f"spec.rules[{index}].backendRefs sends to "
                           f"{ref.get('name')}:{ref.get('port')}, not the Serve Service "
                           f"{service}:{port} ({PROJECT}:serve.http.port)", resource.urn)
        if missing := sorted(prefixes - routed):
            yield (f"spec.rules match no path for the Serve applications' route prefixes "
                   f"{', '.join(missing)}: clients of the front door cannot reach them. The "
                   "rules derive from the apps; render the route again", resource.urn)
        if extra := sorted(routed - prefixes):
            yield (f"spec.rules match {', '.join(extra)}, which no Serve application serves "
                   "(route_prefix): remove them or add the app", resource.urn)
