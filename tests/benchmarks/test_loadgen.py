"""The load generator's maths and its open-loop timing, against a real local HTTP server.

No Ray here: an aiohttp server on loopback that can be told to stall stands in for Serve,
because what is tested is the client's bookkeeping, not the server.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from benchmarks.latency import LatencySummary, nearest_rank
from benchmarks.loadgen import (
    LoadResult,
    Workload,
    arrival_offsets,
    closed_loop,
    open_loop,
    run,
)


def test_nearest_rank_returns_an_observed_sample() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100
    assert nearest_rank(samples, 50) == 50
    assert nearest_rank(samples, 99) == 99
    assert nearest_rank(samples, 100) == 100
    assert nearest_rank([3.0, 1.0, 2.0], 50) == 2.0  # ceil(1.5) = rank 2, no interpolation
    assert nearest_rank([5.0], 99) == 5.0


def test_nearest_rank_rejects_empty_samples_and_out_of_range_percentiles() -> None:
    with pytest.raises(ValueError, match="no samples"):
        nearest_rank([], 50)
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        nearest_rank([1.0], 0)


def test_latency_summary_is_in_milliseconds_with_its_sample_count() -> None:
    summary = LatencySummary.of([0.010] * 98 + [0.500, 1.000])
    assert summary is not None
    assert (summary.count, summary.p50_ms, summary.p99_ms, summary.max_ms) == (100, 10, 500, 1000)
    assert LatencySummary.of([]) is None


@pytest.mark.parametrize("arrivals", ["poisson", "constant"])
def test_arrivals_offer_exactly_the_requested_rate_inside_the_window(arrivals: str) -> None:
    offsets = arrival_offsets(40, 2.5, arrivals, seed=3)  # type: ignore[arg-type]
    assert len(offsets) == 100
    assert offsets == sorted(offsets)
    assert offsets[0] >= 0 and offsets[-1] < 2.5


class StallingServer:
    """Answers at once, except while `stall_s` > 0: then every request waits that long."""

    def __init__(self) -> None:
        self.stall_s = 0.0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        return web.json_response({"ok": True})

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> StallingServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[StallingServer]:
    with StallingServer() as running:
        yield running


WORKLOAD = Workload.json("test", "/", [{"x": 1}])


def test_open_loop_counts_a_stall_from_the_intended_send_time(server: StallingServer) -> None:
    """With the server stalling 300 ms per request, every request, including those whose
    send the client had to delay, shows at least the stall; none is silently skipped."""
    server.stall_s = 0.3
    try:
        result = run(open_loop(f"http://127.0.0.1:{server.port}", WORKLOAD, rate=50,
                               duration_s=1.0, arrivals="constant"))
    finally:
        server.stall_s = 0.0
    document = result.to_json()
    assert document["requests"] == 50 and document["ok"] == 50
    assert document["latency"]["p50_ms"] >= 300
    assert document["offered_rps"] == 50


def test_open_loop_charges_a_client_stall_to_the_requests_it_delayed(
    server: StallingServer,
) -> None:
    """The client itself freezes for 300 ms (as a starved load generator would): requests
    meant to go out meanwhile are sent late, and their latency includes the wait. Timing
    from the actual send would report ~1 ms for all of them (coordinated omission).

    Every bound here follows from the freeze alone, so a busy machine (CI runs this right
    after Ray's teardown) can only add to the latencies, never break an assertion."""
    import time

    freeze: list[float] = []

    def frozen() -> None:
        freeze.append(time.perf_counter())
        time.sleep(0.3)
        freeze.append(time.perf_counter())

    async def with_frozen_client() -> LoadResult:
        asyncio.get_running_loop().call_later(0.3, frozen)
        return await open_loop(f"http://127.0.0.1:{server.port}", WORKLOAD, rate=100,
                               duration_s=1.0, arrivals="constant")

    result = run(with_frozen_client())
    document = result.to_json()
    assert document["ok"] == 100
    frozen_at, thawed_at = freeze
    # Each request is timed from its slot in the schedule, whatever happened to its send.
    intended = sorted(sample.start for sample in result.samples)
    assert [round(b - a, 9) for a, b in itertools.pairwise(intended)] == [0.01] * 99
    # Requests due during the freeze are there (timed from the actual send, none would be),
    # and none could finish before it ended, so all of that wait is in their latency.
    delayed = [s for s in result.samples if frozen_at <= s.start < thawed_at]
    assert len(delayed) >= 20  # the freeze fell inside the 1 s schedule
    assert all(s.end >= thawed_at for s in delayed)
    assert document["latency"]["max_ms"] >= 250  # the request due just as the freeze began
    assert float(document["send_lag_p99_ms"]) >= 200


def test_closed_loop_keeps_concurrency_requests_in_flight(server: StallingServer) -> None:
    """With a 100 ms stall, 4 workers can complete at most 4 / 0.1 s = 40 requests per second
    (the upper bound proves no fifth request was in flight; the lower one is loose on purpose)."""
    server.stall_s = 0.1
    try:
        result = run(closed_loop(f"http://127.0.0.1:{server.port}", WORKLOAD, concurrency=4,
                                 duration_s=1.0, warmup_s=0.2))
    finally:
        server.stall_s = 0.0
    assert result.errors == {}
    assert 10 <= result.throughput_rps <= 44
    assert min(result.ok_latencies) >= 0.1


def test_refused_connections_are_counted_as_errors_not_dropped() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run(open_loop(f"http://127.0.0.1:{port}", WORKLOAD, rate=20, duration_s=0.5,
                           arrivals="constant"))
    assert result.to_json()["ok"] == 0
    assert sum(result.errors.values()) == 10
