"""A step in load scales a deployment up within its configured delays and back down after.

Runs a real local Ray. The deployment is test-only (an async sleep, so two cores are enough
for three replicas) but its options come from a `DeploymentSpec`, the same path the apps'
options take. Ray pushes autoscaling metrics every 10 s and averages them over a 30 s
look-back by default; the test shortens both (env vars at Ray start, `look_back_period_s`)
so the whole step takes about a minute instead of several.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pydantic import ByteSize

from apps.spec import Autoscaling, DeploymentSpec, Resources
from servestack.local.free_ports import free_port

pytestmark = [pytest.mark.ray, pytest.mark.autoscaling, pytest.mark.timeout(240)]

METRICS_PUSH_INTERVAL_S = 0.5
LOOK_BACK_PERIOD_S = 2.0
SERVICE_TIME_S = 0.2

SPEC = DeploymentSpec(
    name="Sleeper",
    resources=Resources(num_cpus=0.1, memory=ByteSize(64 * 1024**2)),
    autoscaling=Autoscaling(
        min_replicas=1, max_replicas=3, target_ongoing_requests=2,
        upscale_delay_s=1, downscale_delay_s=5,
    ),
    max_ongoing_requests=8,
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=2,
)
LOAD_CONCURRENCY = 12  # 12 in flight / target 2 per replica -> wants 6, capped at max 3
LOAD_S = 12.0
# Bounds: the configured delay plus what Ray adds before and after it (metrics push,
# look-back averaging, the 0.1 s control loop, starting or draining a replica), with
# headroom for two busy shared cores.
UPSCALE_BOUND_S = SPEC.autoscaling.upscale_delay_s + 12.0 if SPEC.autoscaling else 0.0
DOWNSCALE_BOUND_S = SPEC.autoscaling.downscale_delay_s + 15.0 if SPEC.autoscaling else 0.0


@dataclass(frozen=True)
class Point:
    t: float
    replicas: int
    in_flight: int


@pytest.fixture(scope="module")
def sleeper_url() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    from ray import serve
    from ray.serve import Deployment

    env = {
        "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": str(METRICS_PUSH_INTERVAL_S),
        "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": str(METRICS_PUSH_INTERVAL_S),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        # address="local": never attach to another engineer's `ray start` head.
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})

        class Sleeper:  # defined here so Ray pickles it by value for the replicas
            async def __call__(self, request: Any) -> str:
                await asyncio.sleep(SERVICE_TIME_S)
                return "ok"

        options = SPEC.serve_options()
        options["autoscaling_config"].update(
            look_back_period_s=LOOK_BACK_PERIOD_S, metrics_interval_s=METRICS_PUSH_INTERVAL_S
        )
        deployment: Deployment = serve.deployment(**options)(Sleeper)
        serve.run(deployment.bind(), name="step", route_prefix="/step")
        try:
            yield f"http://127.0.0.1:{port}/step"
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()


def _running_replicas() -> int:
    from ray import serve

    deployment = serve.status().applications["step"].deployments[SPEC.name]
    return sum(n for state, n in deployment.replica_states.items() if state == "RUNNING")


async def _load_step(url: str) -> list[Point]:
    """Idle 2 s, LOAD_CONCURRENCY closed-loop clients for LOAD_S, then idle until back at min."""
    timeline: list[Point] = []
    in_flight = 0
    start = time.perf_counter()
    load_until = start + 2.0 + LOAD_S
    give_up = load_until + DOWNSCALE_BOUND_S + 10.0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal in_flight
        await asyncio.sleep(2.0)
        while time.perf_counter() < load_until:
            in_flight += 1
            try:
                async with session.post(url, data=b"{}") as response:
                    assert response.status == 200, await response.text()
            finally:
                in_flight -= 1

    async def sample() -> None:
        while time.perf_counter() < give_up:
            replicas = await asyncio.to_thread(_running_replicas)
            now = time.perf_counter()
            timeline.append(Point(round(now - start, 1), replicas, in_flight))
            if now > load_until + 1 and replicas == SPEC.min_replicas:
                return
            await asyncio.sleep(0.5)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(sample(), *(client(session) for _ in range(LOAD_CONCURRENCY)))
    return timeline


def test_load_step_scales_up_within_delay_and_back_down_after(sleeper_url: str) -> None:
    timeline = asyncio.run(_load_step(sleeper_url))
    print("\n  t(s)  replicas  in-flight   (load from t=2.0 to t=%.1f)" % (2.0 + LOAD_S))
    for point in timeline:
        print(f"{point.t:6.1f}  {point.replicas:8d}  {point.in_flight:9d}")

    assert timeline[0].replicas == SPEC.min_replicas
    peak = max(p.replicas for p in timeline)
    assert peak == SPEC.max_replicas, f"never reached max_replicas={SPEC.max_replicas}"
    scaled_up_at = next(p.t for p in timeline if p.replicas > SPEC.min_replicas)
    print(f"first upscale {scaled_up_at - 2.0:.1f} s after the step (bound {UPSCALE_BOUND_S} s)")
    assert scaled_up_at - 2.0 <= UPSCALE_BOUND_S
    back_at = timeline[-1]
    assert back_at.replicas == SPEC.min_replicas, "did not scale back down to min_replicas"
    load_end = 2.0 + LOAD_S
    print(f"back to min {back_at.t - load_end:.1f} s after the load stopped "
          f"(bound {DOWNSCALE_BOUND_S} s)")
    assert back_at.t - load_end <= DOWNSCALE_BOUND_S
    # No early downscale: the downscale delay holds replicas while the load lasts.
    during = [p for p in timeline if scaled_up_at <= p.t <= load_end]
    assert min(p.replicas for p in during) > SPEC.min_replicas
