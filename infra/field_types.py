"""Field types the stack's sections and the backend specs share, each rule written once.

Outside infra/config/ so that a backend spec can use them while that package assembles.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from apps.kubernetes_rules import DNS_1123_LABEL, is_qualified_name

DNS_LABEL = DNS_1123_LABEL


def _sorted_labels(value: dict[str, str]) -> dict[str, str]:
    """Kubernetes label maps: valid keys, sorted so rendered manifests diff cleanly."""
    for key in value:
        if not is_qualified_name(key):
            raise ValueError(f"{key!r} is not a valid label key")
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
