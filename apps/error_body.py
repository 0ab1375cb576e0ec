"""The body of every error servestack answers, in one stdlib-only module: the apps, the
ingress layer and the HAProxy config wrapper (started at every HAProxy reload, so it stays
light) all write it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_DETAILS = 20
"""A 64-tile array request can carry 786k bad numbers; nobody needs all of them echoed."""

REPLICA_FAILED = "the replica handling this request failed; try again"

ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    425: "too_early",
    429: "too_many_requests",
    500: "internal",
    501: "not_implemented",
    502: "replica_failed",
    503: "not_ready",
    504: "request_timeout",
}
"""The contract's code for an HTTP status, whoever answers: an app, Ray's proxy or HAProxy."""


def error_code(status: int) -> str:
    """`ERROR_CODES`' code, else the client's fault (4xx) or ours (5xx)."""
    return ERROR_CODES.get(status, "bad_request" if status < 500 else "internal")


def error_body(
    status: int, code: str, message: str, details: Iterable[Mapping[str, str]] = ()
) -> dict[str, Any]:
    details = list(details)
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    body["details"] = details[:MAX_DETAILS]
    if len(details) > MAX_DETAILS:
        body["details_truncated"] = len(details) - MAX_DETAILS
    return {"error": body}
