"""servestack's layer in Ray's Python HTTP proxy: whole bodies first, JSON errors, one retry.

Ray's proxy hands a request to a replica as soon as its headers arrive and streams the body
after it, so a client that sends headers and then stalls holds one of the replica's
`max_ongoing_requests` slots for as long as it likes: 64 stalled clients stop an app.
`IngressGuard` wraps the proxy's ASGI app (Ray calls `proxy_middlewares` in every proxy
process, named by RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH) and:

- reads the whole body before any replica is involved, within `body_timeout_s` (else 408)
  and `max_body_bytes` (else 413), so a stalled client costs one coroutine and a socket;
- answers with the JSON error contract (apps/http_contract.py) where the proxy itself
  would answer text/plain: timeouts, unknown routes, a dead replica, and a request the
  HTTP parser refuses (e.g. `Content-Length: abc`, by replacing uvicorn's 400 writer);
- retries a request once when the proxy reports a replica failure (a non-JSON 500) and the
  request is idempotent: GET/HEAD, or a POST to one of the apps' `idempotent_paths`.

Its settings (apps/ingress_settings.py) arrive as JSON in $SERVESTACK_INGRESS, written from
the stack's `serve.ingress` (infra/ingress_environment.py), so the local head
and every RayService pod run the same values.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.error_body import REPLICA_FAILED, error_body, error_code
from apps.ingress_settings import IngressRuntime, runtime_from_env

logger = logging.getLogger("ray.serve")


class _BodyTooLargeError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the buffered body, then waits on the real one (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, code: str, message: str, close: bool = False,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(error_body(status, code, message)).encode()
    extra = list(headers or [])
    if close:
        extra.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        *extra]})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class _Attempt:
    """Passes a response through, except a non-JSON error from the proxy itself: that one
    is held, then retried (if allowed) or rewritten into the JSON contract."""

    def __init__(self, send: Send, may_retry: bool) -> None:
        self._send = send
        self._may_retry = may_retry
        self.status = 0
        self.held: list[bytes] | None = None
        self._start: Message | None = None
        self.wants_retry = False
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            status = int(message["status"])
            content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
            if status >= 400 and "json" not in content_type:
                self.status, self.held, self._start = status, [], message
                self.wants_retry = self._may_retry and status == 500
                return
            await self._send(message)
            return
        if self.held is not None:
            if message["type"] == "http.response.body":
                self.held.append(message.get("body", b""))
            return
        await self._send(message)

    async def finish(self) -> None:
        """Emit the held error as JSON (unless it is to be retried)."""
        if self.held is None or self.wants_retry or self._start is None:
            return
        text = b"".join(self.held).decode("utf-8", "replace").strip()
        # Ray's proxy answers a lost replica with a text 500, where a gateway says 502.
        code = error_code(502 if self.status == 500 else self.status)
        keep = [(name, value) for name, value in self._start.get("headers", [])
                if name.lower() in (b"retry-after", b"allow")]
        await _send_json(self._send, self.status, code, text or f"HTTP {self.status}",
                         headers=keep)


class IngressGuard:
    """ASGI middleware around Ray's proxy app; see the module docstring."""

    def __init__(self, app: ASGIApp, runtime: IngressRuntime | None = None) -> None:
        self.app = app
        self.runtime = runtime or runtime_from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/-/"):
            await self.app(scope, receive, send)  # websockets, Ray's health and routes
            return
        settings = self.runtime.settings
        limit = int(settings.max_body_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, "payload_too_large",
                             f"request body exceeds {limit} bytes (serve.ingress.max_body_bytes)",
                             close=True)
            return
        try:
            body = await asyncio.wait_for(_read_body(receive, limit), settings.body_timeout_s)
        except TimeoutError:
            await _send_json(send, 408, "request_timeout",
                             f"the request body did not arrive within {settings.body_timeout_s:g} "
                             "s (serve.ingress.body_timeout_s)", close=True)
            return
        except _BodyTooLargeError:
            await _send_json(send, 413, "payload_too_large",
                             f"request body exceeds {limit} bytes (serve.ingress.max_body_bytes)",
                             close=True)
            return
        except _ClientGoneError:
            return
        attempts = 2 if self.runtime.retryable(scope["method"], scope["path"]) else 1
        for attempt in range(attempts):
            may_retry = attempt + 1 < attempts
            outcome = _Attempt(send, may_retry)
            failure = ""
            try:
                # Ray's proxy rewrites path/root_path in the scope it is given (route prefix
                # stripped): a retry must start from the client's scope, or it 404s.
                await self.app(dict(scope), _replay(body, receive), outcome.send)
            except Exception as error:  # the proxy gave up on the request; answer for it
                failure = f"{type(error).__name__}: {error}"
            if not outcome.started:
                # Ray's proxy sends nothing when the replica died under the request.
                if may_retry:
                    logger.warning("retrying %s %s once: no response (%s)", scope["method"],
                                   scope["path"], failure or "replica failed")
                    continue
                await _send_json(send, 500, "replica_failed", REPLICA_FAILED)
                return
            if not outcome.wants_retry:
                await outcome.finish()
                return
            logger.warning("retrying %s %s once: its replica failed (%s)", scope["method"],
                           scope["path"], b"".join(outcome.held or []).decode("utf-8", "replace"))


def _json_400_writer(protocol: Any, msg: str) -> None:
    """uvicorn's answer to a request its parser refuses, as the contract's JSON."""
    payload = json.dumps(error_body(400, "bad_request", f"malformed HTTP request: {msg}")).encode()
    head = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(payload)).encode() + b"\r\nconnection: close\r\n\r\n")
    protocol.transport.write(head + payload)
    protocol.transport.close()


def _patch_uvicorn_400() -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    H11Protocol.send_400_response = _json_400_writer  # type: ignore[method-assign, assignment]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional; uvicorn then runs h11
        return
    HttpToolsProtocol.send_400_response = _json_400_writer  # type: ignore[method-assign, assignment]


def proxy_middlewares() -> list[Any]:
    """Ray's proxy callback: runs once in each proxy process before it starts serving."""
    from starlette.middleware import Middleware

    _patch_uvicorn_400()
    runtime = runtime_from_env()
    logger.info("servestack ingress guard: %s", runtime.model_dump_json())
    return [Middleware(IngressGuard, runtime=runtime)]

