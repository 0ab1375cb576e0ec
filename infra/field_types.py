"""Field types the stack's sections and the backend specs share, each rule written once.

Outside infra/config/ so that a backend spec can use them while that package assembles.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator

from apps import kubernetes_rules as k8s
from apps.kubernetes_rules import DNS_1123_LABEL

DNS_LABEL = DNS_1123_LABEL
"""A name pattern for what only looks like a Kubernetes name (cloud cluster names)."""


def kubernetes_rule(rule: Callable[[Any], list[str]]) -> AfterValidator:
    """A field validator from one of Kubernetes' rules: its problems, quoting the value."""
    def check(value: Any) -> Any:
        if value is not None:
            k8s.raise_problems(value, rule(value))
        return value
    return AfterValidator(check)


DnsLabel = Annotated[str, kubernetes_rule(k8s.dns1123_label)]
"""A namespace or an object name most kinds take."""
DnsSubdomain = Annotated[str, kubernetes_rule(k8s.dns1123_subdomain)]
"""A Secret's or a claim's name."""
LabelValue = Annotated[str, kubernetes_rule(k8s.label_value)]
Port = Annotated[int, kubernetes_rule(k8s.port_number)]
"""A port a container, a Service or a NetworkPolicy names."""


def _sorted_labels(value: dict[str, str]) -> dict[str, str]:
    """Kubernetes label maps (node labels, selectors): valid keys and values, sorted so
    rendered manifests diff cleanly."""
    problems = [f"key {key!r}: {problem}" for key in value for problem in k8s.label_key(key)]
    problems += [f"value {text!r} of {key!r}: {problem}" for key, text in value.items()
                 for problem in k8s.label_value(text)]
    if problems:
        raise ValueError("; ".join(problems))
    return dict(sorted(value.items()))


LabelMap = Annotated[dict[str, str], AfterValidator(_sorted_labels)]


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/8") from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


def _http_url(value: str | None) -> str | None:
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://mlflow.example:443")
    return value


HttpUrl = Annotated[str | None, AfterValidator(_http_url)]
