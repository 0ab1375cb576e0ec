"""The proxy's servestack layer, driven as ASGI: stalled bodies, JSON errors, one retry.

The app below stands in for Ray's proxy app; what it does on each call is what the real
proxy does (answer, send nothing when the replica died, answer text/plain on a timeout),
and what an app's replica does (mark its answer to a POST to an idempotent path).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from apps.http_contract import IdempotentMark
from apps.ingress import IngressGuard
from apps.ingress_settings import IDEMPOTENT_HEADER, IngressSettings
from apps.spec import IDEMPOTENT_PATHS_ENV

SETTINGS = IngressSettings(body_timeout_s=0.2)
MARK = (IDEMPOTENT_HEADER, b"1")
OK = {"type": "http.response.start", "status": 200,
      "headers": [(b"content-type", b"application/json"), MARK]}


def _scope(method: str = "POST", path: str = "/embed/", length: str | None = None) -> Scope:
    headers = [(b"content-length", length.encode())] if length else []
    return {"type": "http", "method": method, "path": path, "headers": headers}


async def _run(app: Any, scope: Scope, messages: list[Message],
               guard: IngressGuard | None = None) -> list[Message]:
    sent: list[Message] = []
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a client that never sends the rest
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for((guard or IngressGuard(app, SETTINGS))(scope, receive, send), 5)
    return sent


def _learned(app: Any, *paths: str) -> IngressGuard:
    """A guard that has seen one marked answer to a POST on each of `paths`."""
    guard = IngressGuard(app, SETTINGS)
    for path in paths:
        guard.learned.note(path, 200, marked=True)
    return guard


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
    status, body = _status_and_body(
        asyncio.run(_run(proxy, _scope(), request, _learned(proxy, "/embed"))))
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
    status, _ = _status_and_body(
        asyncio.run(_run(proxy, _scope(path="/embed"), request, _learned(proxy, "/embed/"))))
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


def test_the_proxy_learns_idempotent_paths_from_the_apps_mark_and_never_shows_it() -> None:
    """The proxy holds no app's env: the first POST to a path is not retried; once an answer
    from the app's replica carried the mark, the next POST there is, and an unmarked
    answer (another app now serves the path) makes the proxy forget it."""
    dying = False
    calls = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1
        await receive()
        if dying and calls % 2 == 1:
            return  # the replica died under this attempt
        await send(OK)
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    guard = IngressGuard(app, SETTINGS)
    request = [{"type": "http.request", "body": b"{}", "more_body": False}]
    dying, calls = True, 0
    status, body = _status_and_body(asyncio.run(_run(app, _scope(), request, guard)))
    assert (status, body["error"]["code"], calls) == (500, "replica_failed", 1)

    dying = False
    sent = asyncio.run(_run(app, _scope(), request, guard))
    assert _status_and_body(sent) == (200, {"ok": True})
    assert MARK not in sent[0]["headers"], "the client sees the app's mark"
    assert "/embed" in guard.learned

    dying, calls = True, 0
    assert _status_and_body(asyncio.run(_run(app, _scope(), request, guard)))[0] == 200
    assert calls == 2

    async def unmarked(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard.app = unmarked
    asyncio.run(_run(unmarked, _scope(), request, guard))
    assert "/embed" not in guard.learned


def test_the_learned_paths_stay_bounded() -> None:
    guard = IngressGuard(_never_called, SETTINGS)
    for index in range(5000):
        guard.learned.note(f"/p{index}", 200, marked=True)
    assert "/p4999" in guard.learned and "/p0" not in guard.learned


def test_a_replica_marks_its_answers_to_its_own_idempotent_posts_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below the route prefix Serve puts in root_path, from the app's own runtime_env."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    monkeypatch.setenv(IDEMPOTENT_PATHS_ENV, '["/query"]')
    mark = IdempotentMark(app)

    async def raw(method: str, path: str) -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"{}"}

        async def send(message: Message) -> None:
            sent.append(message)

        await mark({**_scope(method, path), "root_path": "/search"}, receive, send)
        return sent

    assert MARK in asyncio.run(raw("POST", "/search/query"))[0]["headers"]
    assert MARK in asyncio.run(raw("POST", "/search/query/"))[0]["headers"]
    assert MARK not in asyncio.run(raw("POST", "/search/documents"))[0]["headers"]
    assert MARK not in asyncio.run(raw("GET", "/search/query"))[0]["headers"]


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
