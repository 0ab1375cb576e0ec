"""The proxy's servestack layer, driven as ASGI: stalled bodies, JSON errors, one retry.

The app below stands in for Ray's proxy app; what it does on each call is what the real
proxy does (answer, send nothing when the replica died, answer text/plain on a timeout).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from apps.ingress import IngressGuard
from apps.ingress_settings import IngressRuntime, IngressSettings

RUNTIME = IngressRuntime(settings=IngressSettings(body_timeout_s=0.2),
                         idempotent_paths=("/embed",))


def _scope(method: str = "POST", path: str = "/embed/", length: str | None = None) -> Scope:
    headers = [(b"content-length", length.encode())] if length else []
    return {"type": "http", "method": method, "path": path, "headers": headers}


async def _run(app: Any, scope: Scope, messages: list[Message]) -> list[Message]:
    sent: list[Message] = []
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a client that never sends the rest
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(IngressGuard(app, RUNTIME)(scope, receive, send), 5)
    return sent


def _status_and_body(sent: list[Message]) -> tuple[int, dict[str, Any]]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), json.loads(body)


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a replica was involved")


def test_a_stalled_body_gets_408_and_never_reaches_a_replica() -> None:
    stalled = [{"type": "http.request", "body": b'{"te', "more_body": True}]
    status, body = _status_and_body(asyncio.run(_run(_never_called, _scope(), stalled)))
    assert status == 408 and body["error"]["code"] == "request_timeout"


def test_a_declared_oversized_body_gets_413_before_it_is_read() -> None:
    scope = _scope(length=str(64 * 1024**2))
    status, body = _status_and_body(asyncio.run(_run(_never_called, scope, [])))
    assert status == 413 and "max_body_bytes" in body["error"]["message"]


def test_an_idempotent_request_whose_replica_died_is_retried_once_with_the_whole_body() -> None:
    seen: list[bytes] = []

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((await receive())["body"])
        if len(seen) == 1:
            return  # Ray's proxy sends nothing when the replica died under the request
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    request = [{"type": "http.request", "body": b'{"texts": ["a"]}', "more_body": False}]
    status, body = _status_and_body(asyncio.run(_run(proxy, _scope(), request)))
    assert (status, body) == (200, {"ok": True})
    assert seen == [b'{"texts": ["a"]}'] * 2


def test_a_retry_sees_the_clients_path_although_the_proxy_rewrote_the_first_scope() -> None:
    paths: list[tuple[str, str]] = []

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        paths.append((scope["path"], scope.get("root_path", "")))
        scope["root_path"], scope["path"] = "/embed", "/"  # as Ray's proxy strips the prefix
        if len(paths) == 1:
            return  # the replica died under the first attempt
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    request = [{"type": "http.request", "body": b'{"texts": ["a"]}', "more_body": False}]
    status, _ = _status_and_body(asyncio.run(_run(proxy, _scope(path="/embed"), request)))
    assert status == 200
    assert paths == [("/embed", ""), ("/embed", "")]


def test_a_non_idempotent_post_is_not_retried_and_the_failure_is_json() -> None:
    calls = 0

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1

    request = [{"type": "http.request", "body": b"{}", "more_body": False}]
    status, body = _status_and_body(
        asyncio.run(_run(proxy, _scope(path="/search/documents"), request)))
    assert calls == 1
    assert status == 500 and body["error"]["code"] == "replica_failed"


def test_the_proxys_plain_text_timeout_becomes_the_json_contract() -> None:
    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 408,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": b"Request abc timed out after 60s."})

    request = [{"type": "http.request", "body": b"{}", "more_body": False}]
    status, body = _status_and_body(asyncio.run(_run(proxy, _scope(), request)))
    assert status == 408
    assert body["error"] == {"status": 408, "code": "request_timeout",
                             "message": "Request abc timed out after 60s.", "details": []}


def test_parsing_a_stack_imports_no_asgi_layer() -> None:
    """The settings live apart from the middleware: the program's config needs no starlette."""
    probe = ("import sys, infra.config; "
             "print(sorted(m for m in ('starlette', 'apps.ingress') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert loaded.strip() == "[]"
