"""HTTP load generator: closed loop (fixed concurrency) and open loop (fixed arrival rate).

Open-loop latency is measured from each request's *intended* send time, not from when the
client got round to sending it, so a stalled server (or a starved client) shows up in the
tail instead of silently lowering the offered rate (coordinated omission). The client is
asyncio + aiohttp on uvloop: one thread, cheap per request, because it shares the same two
cores with the server; its own CPU time is measured and reported with every result.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import aiohttp
import typer

from benchmarks.latency import LatencySummary, nearest_rank

Arrivals = Literal["poisson", "constant"]
T = TypeVar("T")


@dataclass(frozen=True)
class Workload:
    """What one request sends; bodies are cycled so consecutive requests differ."""

    name: str
    path: str
    bodies: tuple[bytes, ...]
    items_per_request: int = 1
    content_type: str = "application/json"

    @classmethod
    def json(cls, name: str, path: str, documents: Sequence[Any], items: int = 1) -> Workload:
        encoded = tuple(json.dumps(doc, sort_keys=True).encode() for doc in documents)
        return cls(name=name, path=path, bodies=encoded, items_per_request=items)


@dataclass
class _Sample:
    start: float  # intended send time (open loop) or actual send time (closed loop)
    end: float
    outcome: str  # "ok", "http_<status>" or the exception's class name


@dataclass
class LoadResult:
    """One measured run; throughput counts successful completions inside the window."""

    mode: Literal["closed", "open"]
    workload: str
    concurrency: int | None
    offered_rps: float | None
    window_s: float
    samples: list[_Sample] = field(repr=False)
    items_per_request: int
    client_cpu_s: float
    send_lag_p99_ms: float | None = None

    @property
    def ok_latencies(self) -> list[float]:
        return [s.end - s.start for s in self.samples if s.outcome == "ok"]

    @property
    def errors(self) -> dict[str, int]:
        return dict(sorted(Counter(s.outcome for s in self.samples if s.outcome != "ok").items()))

    @property
    def throughput_rps(self) -> float:
        return sum(1 for s in self.samples if s.outcome == "ok") / self.window_s

    def to_json(self) -> dict[str, Any]:
        latency = LatencySummary.of(self.ok_latencies)
        cores = os.cpu_count() or 1
        document: dict[str, Any] = {
            "mode": self.mode,
            "workload": self.workload,
            "concurrency": self.concurrency,
            "offered_rps": self.offered_rps,
            "window_s": round(self.window_s, 3),
            "requests": len(self.samples),
            "ok": sum(1 for s in self.samples if s.outcome == "ok"),
            "errors": self.errors,
            "throughput_rps": round(self.throughput_rps, 2),
            "items_per_s": round(self.throughput_rps * self.items_per_request, 2),
            "latency": latency.to_json() if latency else None,
            "client_cpu_s": round(self.client_cpu_s, 3),
            "client_cpu_share": round(self.client_cpu_s / (self.window_s * cores), 3),
            "send_lag_p99_ms": None if self.send_lag_p99_ms is None
            else round(self.send_lag_p99_ms, 3),
        }
        return document


def _outcome_of_exception(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    return type(error).__name__


async def _send(session: aiohttp.ClientSession, url: str, workload: Workload, index: int) -> str:
    body = workload.bodies[index % len(workload.bodies)]
    try:
        async with session.post(
            url, data=body, headers={"content-type": workload.content_type}
        ) as response:
            await response.read()
            return "ok" if response.status == 200 else f"http_{response.status}"
    except (TimeoutError, aiohttp.ClientError) as error:
        return _outcome_of_exception(error)


def _session(connections: int, timeout_s: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)
    )


async def closed_loop(
    base_url: str,
    workload: Workload,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
    timeout_s: float = 30.0,
) -> LoadResult:
    """`concurrency` workers each send the next request as soon as the previous one returns.

    Requests started during the warm-up are discarded; in-flight requests at the end are
    awaited so the tail is not cut off.
    """
    url = base_url.rstrip("/") + workload.path
    samples: list[_Sample] = []
    counter = iter(range(10**9))
    async with _session(concurrency, timeout_s) as session:
        now = time.perf_counter()
        window_start, stop = now + warmup_s, now + warmup_s + duration_s
        cpu_start: list[float] = []

        async def worker() -> None:
            while (start := time.perf_counter()) < stop:
                outcome = await _send(session, url, workload, next(counter))
                if start >= window_start:
                    samples.append(_Sample(start, time.perf_counter(), outcome))

        async def mark_cpu() -> None:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            cpu_start.append(time.process_time())

        await asyncio.gather(mark_cpu(), *(worker() for _ in range(concurrency)))
        cpu = time.process_time() - cpu_start[0]
    return LoadResult(
        mode="closed", workload=workload.name, concurrency=concurrency, offered_rps=None,
        window_s=duration_s, samples=samples, items_per_request=workload.items_per_request,
        client_cpu_s=cpu,
    )


def arrival_offsets(rate: float, duration_s: float, arrivals: Arrivals, seed: int) -> list[float]:
    """Intended send times (seconds from start), exactly round(rate * duration) of them.

    Poisson: sorted uniform points in the window, which is a Poisson process conditioned on
    its count, so gaps are exponential but the offered rate is exactly the one asked for (a
    short run of free exponential gaps can miss the rate by 10%). Constant: evenly spaced.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    count = round(rate * duration_s)
    if arrivals == "constant":
        return [i / rate for i in range(count)]
    rng = random.Random(seed)
    return sorted(rng.uniform(0, duration_s) for _ in range(count))


async def open_loop(
    base_url: str,
    workload: Workload,
    rate: float,
    duration_s: float,
    arrivals: Arrivals = "poisson",
    seed: int = 0,
    max_in_flight: int = 512,
    timeout_s: float = 30.0,
) -> LoadResult:
    """Send at the intended times whatever the server does; latency counts from intended time.

    Beyond `max_in_flight` outstanding requests a send is recorded as the error
    `client_in_flight_cap` rather than queued, so the run stays bounded in memory and time.
    """
    url = base_url.rstrip("/") + workload.path
    offsets = arrival_offsets(rate, duration_s, arrivals, seed)
    samples: list[_Sample] = []
    lags: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    in_flight = 0
    async with _session(max_in_flight, timeout_s) as session:

        async def one(index: int, intended: float) -> None:
            nonlocal in_flight
            in_flight += 1
            try:
                outcome = await _send(session, url, workload, index)
            finally:
                in_flight -= 1
            samples.append(_Sample(intended, time.perf_counter(), outcome))

        cpu_start = time.process_time()
        start = time.perf_counter() + 0.01
        for index, offset in enumerate(offsets):
            intended = start + offset
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - intended)
            if in_flight >= max_in_flight:
                samples.append(_Sample(intended, intended, "client_in_flight_cap"))
                continue
            tasks.append(asyncio.create_task(one(index, intended)))
        await asyncio.gather(*tasks)
        cpu = time.process_time() - cpu_start
    return LoadResult(
        mode="open", workload=workload.name, concurrency=None, offered_rps=rate,
        window_s=duration_s, samples=samples, items_per_request=workload.items_per_request,
        client_cpu_s=cpu, send_lag_p99_ms=nearest_rank(lags, 99) * 1000 if lags else None,
    )


def run(coroutine: Awaitable[T]) -> T:
    """Run on uvloop (lower per-request client CPU than the default loop)."""
    import uvloop

    async def main() -> T:
        return await coroutine

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


cli = typer.Typer(add_completion=False, help="Load an HTTP JSON endpoint; prints a JSON result.")


@cli.command()
def main(
    url: str = typer.Argument(..., help="Base URL, e.g. http://127.0.0.1:8000"),
    path: str = typer.Option("/", help="Route to POST to, e.g. /embed"),
    body: str = typer.Option("{}", help="JSON body of every request."),
    mode: str = typer.Option("closed", help="closed (fixed concurrency) or open (fixed rate)."),
    concurrency: int = typer.Option(1, min=1),
    rate: float = typer.Option(10.0, min=0.001, help="Open loop: requests per second."),
    arrivals: str = typer.Option("poisson", help="Open loop: poisson or constant."),
    duration: float = typer.Option(10.0, min=0.1, max=600),
) -> None:
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise typer.BadParameter("only loopback targets are allowed", param_hint="URL")
    workload = Workload.json("cli", path, [json.loads(body)])
    if mode == "closed":
        result = run(closed_loop(url, workload, concurrency, duration))
    elif mode == "open" and arrivals in ("poisson", "constant"):
        kind: Arrivals = "poisson" if arrivals == "poisson" else "constant"
        result = run(open_loop(url, workload, rate, duration, kind))
    else:
        raise typer.BadParameter("mode must be closed|open, arrivals poisson|constant")
    typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))



if __name__ == "__main__":
    cli()
