"""200 stalled request bodies do not slow a normal client's `POST /embed` (issue 14, item 2).

Before the ingress layer, 64 connections that sent headers and part of a body held every
`max_ongoing_requests` slot of the Embedder and every other client timed out. Here 200
such connections are kept open for the whole run (one the proxy closes with its 408 is
opened again at once, so 200 are always stalled), while one client POSTs a 1-text embed
back to back and its p99 latency must stay under 1 s, for the 30 s the issue's goal names
(three rounds of the ingress's 10 s body timeout: the proxy closing them and the attacker
reconnecting are covered).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from apps.catalog import CATALOG
from tests.faults.conftest import LocalServe, local_serve

pytestmark = [pytest.mark.ray, pytest.mark.faults, pytest.mark.timeout(600)]

EMBEDDINGS = CATALOG["embeddings"].with_overrides({"deployments": {"Embedder": {
    "autoscaling": {"min_replicas": 1, "max_replicas": 1},  # the local stack's one replica
}}})
STALLED = 200
HOLD_S = 30.0
P99_LIMIT_S = 1.0
BODY = b'{"texts": ["hello world"]}'  # 26 bytes; a stalled client sends 10 of them


def _status_and_type(answer: bytes) -> tuple[str, str]:
    """The status line and the JSON error code (or the content type, if not JSON)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    content_type = next((line.split(":", 1)[1].strip() for line in lines[1:]
                         if line.lower().startswith("content-type:")), "")
    if content_type.startswith("application/json"):
        return lines[0], json.loads(body)["error"]["code"]
    return lines[0], content_type


class StalledClients:
    """`count` connections that send headers and a partial body, then wait, on their own
    event loop thread; any the server closes is replaced, so `count` are always stalled."""

    def __init__(self, host: str, port: int, path: str, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY[:10]
        self.opened = 0
        self.closed_by_server = 0
        self.held = 0
        self.answers: set[tuple[str, str]] = set()
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        holders = [asyncio.create_task(self._hold()) for _ in range(self.count)]
        await self._stop.wait()
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)

    async def _hold(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(self.request)
                await writer.drain()
                self.opened += 1
                self.held += 1
                if self.opened >= self.count:
                    self._ready.set()
                answer = await reader.read()  # until the server gives up on us (408, EOF)
                self.closed_by_server += 1
                self.answers.add(_status_and_type(answer))
            finally:
                self.held -= 1
                writer.close()

    def __enter__(self) -> StalledClients:
        self._thread.start()
        assert self._ready.wait(60), f"only {self.opened} of {self.count} connections opened"
        return self

    def __exit__(self, *_: object) -> None:
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def served() -> Iterator[LocalServe]:
    with local_serve((EMBEDDINGS,)) as local:
        yield local


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def test_200_stalled_bodies_leave_a_normal_embed_p99_under_1s(served: LocalServe) -> None:
    url = served.url(EMBEDDINGS)
    host, port = served.base_url.removeprefix("http://").split(":")
    latencies: list[float] = []
    statuses: list[int] = []
    min_held = STALLED
    with requests.Session() as session, StalledClients(
        host, int(port), EMBEDDINGS.route_prefix, STALLED
    ) as stalled:
        deadline = time.perf_counter() + HOLD_S
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                status = session.post(url, data=BODY, timeout=10,
                                      headers={"Content-Type": "application/json"}).status_code
            except requests.RequestException:
                status = 0
            latencies.append(time.perf_counter() - start)
            statuses.append(status)
            min_held = min(min_held, stalled.held)
        reopened = stalled.closed_by_server
    p99 = _p99(latencies)
    summary = (f"{len(latencies)} embeds beside {STALLED} stalled bodies for {HOLD_S:g} s: "
               f"p50 {sorted(latencies)[len(latencies) // 2]:.3f} s, p99 {p99:.3f} s, "
               f"max {max(latencies):.3f} s; the proxy closed {reopened} stalled connections "
               f"(each reopened); fewest held at once {min_held}")
    print("\n" + summary)
    assert set(statuses) == {200}, f"{sorted(set(statuses))}: {summary}"
    assert p99 < P99_LIMIT_S, summary
    # The stall really lasted: the proxy timed the bodies out and they were reopened (the
    # first ~200 at 10 s; half leaves room for a loaded CI machine opening them slowly).
    assert reopened >= STALLED // 2, summary
    # ... each with the JSON contract's 408 (HAProxy's, through servestack's config wrapper,
    # apps/haproxy_config.py; else apps/ingress.py's behind Ray's proxy).
    assert stalled.answers == {("HTTP/1.1 408 Request Timeout", "request_timeout")}, summary
