"""The body of every error servestack answers, in one stdlib-only module: the apps, the
ingress layer and the HAProxy config wrapper (started at every HAProxy reload, so it stays
light) all write it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_DETAILS = 20
"""A 64-tile array request can carry 786k bad numbers; nobody needs all of them echoed."""

REPLICA_FAILED = "the replica handling this request failed; try again"


def error_body(
    status: int, code: str, message: str, details: Iterable[Mapping[str, str]] = ()
) -> dict[str, Any]:
    details = list(details)
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    body["details"] = details[:MAX_DETAILS]
    if len(details) > MAX_DETAILS:
        body["details_truncated"] = len(details) - MAX_DETAILS
    return {"error": body}
