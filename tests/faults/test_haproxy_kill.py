"""`kill -9` of the node's HAProxy under steady load, on real Ray with the shipped ingress.

Without the bridge (apps/haproxy_bridge.py), Ray 2.60 noticed only after three missed proxy
health checks, then started a new proxy actor with an empty route table: 25-40 s of refused
connections, then thousands of `404 no app serves /embed` for an app that exists.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.embeddings.spec import EMBEDDINGS
from apps.haproxy_bridge import BRIDGE_PID, admin_socket, answering_pid, live_bridge
from apps.haproxy_config import HARDENED_NAME
from infra.ingress_environment import HAPROXY_ENABLE_ENV
from tests.faults.conftest import (
    RETRY_AFTER,
    LocalServe,
    Outcome,
    SteadyLoad,
    local_serve,
    wait_until,
)

pytestmark = [pytest.mark.ray, pytest.mark.faults, pytest.mark.timeout(420)]

BODY = {"texts": ["the ingress must not lie about its routes"]}
CONCURRENCY = 4
LISTENING_AGAIN_S = 2.0
"""The issue's bound: serving again about 2 s after the kill (measured: ~0.1-0.4 s)."""
SETTLE_S = 0.5
"""A client thread refused just before the listener came back may record its outcome just
after another thread's first 200 (two busy cores): outcomes are judged from this later."""
RAY_TAKES_OVER_S = 90.0
"""Ray's own replacement: three 1 s health checks, then a new proxy actor on busy cores."""
PYTHON_PROXY_BACK_S = 60.0
"""`serve.haproxy: false`: Ray restarts its dead proxy actor; measured 6.9 s of refused
connections on two busy cores."""


@pytest.fixture()
def served() -> Iterator[LocalServe]:
    """One Ray per test: the next test runs another ingress."""
    with local_serve([EMBEDDINGS]) as serve_handle:
        yield serve_handle


def _node_dir(served: LocalServe) -> Path:
    [config] = served.haproxy_dir.glob(f"*/{HARDENED_NAME}")
    return config.parent


def _ray_haproxy(node_dir: Path) -> int | None:
    """The HAProxy answering Ray's own admin socket: the one Ray started and reloads."""
    socket_path = admin_socket((node_dir / HARDENED_NAME).read_text())
    assert socket_path is not None
    return answering_pid(socket_path)


def _kill_rays_haproxy(node_dir: Path) -> int:
    """SIGKILL the HAProxy Ray runs now (a reload may replace it between a read and a kill)."""
    for _ in range(20):
        victim = _ray_haproxy(node_dir)
        if victim is not None:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                continue
            return victim
        time.sleep(0.1)
    raise AssertionError("no HAProxy answers Ray's admin socket")


def _longest_gap(outcomes: list[Outcome], start: float) -> float:
    """The longest time after `start` without a successful answer."""
    last_ok, gap = start, 0.0
    for outcome in sorted(outcomes, key=lambda o: o.t):
        if outcome.t < start:
            continue
        if outcome.ok:
            gap = max(gap, outcome.t - last_ok)
            last_ok = outcome.t
    return gap


def test_a_killed_haproxy_is_bridged_at_once_and_never_answers_a_wrong_404(
    served: LocalServe,
) -> None:
    node_dir = _node_dir(served)
    with SteadyLoad(served.url(EMBEDDINGS), BODY, CONCURRENCY, timeout_s=10) as load:
        time.sleep(2)
        victim = _kill_rays_haproxy(node_dir)
        killed_at = load.now()
        back_s = wait_until(lambda: any(o.ok for o in load.between(killed_at, load.now())),
                            LISTENING_AGAIN_S * 5, interval_s=0.02)
        # Ray notices, starts a new proxy, whose HAProxy takes the bridge's listeners over.
        wait_until(lambda: _ray_haproxy(node_dir) not in (None, victim)
                   and live_bridge(node_dir) is None, RAY_TAKES_OVER_S)
        taken_over_at = load.now()
        time.sleep(3)
    outcomes = load.between(killed_at, load.now())
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome.detail] = statuses.get(outcome.detail, 0) + 1
    gap = _longest_gap(load.outcomes, killed_at)
    print(f"\nHAProxy {victim} killed at t={killed_at:.2f} s; first 200 after {back_s:.2f} s; "
          f"Ray's new HAProxy took over at +{taken_over_at - killed_at:.1f} s; longest gap "
          f"without a 200: {gap:.2f} s; answers after the kill: {statuses}")
    print(load.timeline(0.5))
    assert back_s <= LISTENING_AGAIN_S
    assert not [o for o in outcomes if o.detail.startswith("404")], statuses
    # Once serving again, every answer is a 200 or an honest "retry": the 503 with
    # Retry-After of a new HAProxy that has neither routes nor a bridge to start on. Only
    # the requests the kill cut off (in flight on the dead process) and the connections it
    # refused fail.
    late = [(round(o.t - killed_at, 2), o.detail) for o in outcomes
            if o.t > killed_at + back_s + SETTLE_S and not o.ok]
    assert {detail for _, detail in late} <= {"503" + RETRY_AFTER}, late
    assert gap <= LISTENING_AGAIN_S
    assert not (node_dir / BRIDGE_PID).exists()
    assert statuses.get("200", 0) > 100  # the load kept flowing around the fault


def test_without_haproxy_a_killed_proxy_actor_comes_back_and_routes_every_path() -> None:
    """The same fault under `serve.haproxy: false`, for comparison: kill -9 of Ray's Python
    proxy actor (the process that listens there). Ray restarts the actor; nothing bridges."""
    from ray.util.state import list_actors

    with local_serve([EMBEDDINGS], extra_env={HAPROXY_ENABLE_ENV: "0"}) as served:
        [proxy] = [actor for actor in list_actors(
            address=served.dashboard_url, filters=[("state", "=", "ALIVE")], detail=True)
            if actor.class_name == "ProxyActor"]
        assert proxy.pid
        with SteadyLoad(served.url(EMBEDDINGS), BODY, CONCURRENCY, timeout_s=10) as load:
            time.sleep(2)
            killed_at = load.now()
            os.kill(proxy.pid, signal.SIGKILL)
            back_s = wait_until(
                lambda: any(o.ok for o in load.between(killed_at, load.now())),
                PYTHON_PROXY_BACK_S, interval_s=0.05)
            time.sleep(3)
        outcomes = load.between(killed_at, load.now())
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome.detail] = statuses.get(outcome.detail, 0) + 1
    print(f"\nserve.haproxy=false: proxy actor (pid {proxy.pid}) killed; first 200 after "
          f"{back_s:.2f} s; answers after the kill: {statuses}")
    # Ray's restarted Python proxy may answer 404 for a moment while its route table loads
    # (seen: 2 under a loaded machine); from SETTLE_S after the first 200 it routes every path.
    late = [(round(o.t - killed_at, 2), o.detail) for o in outcomes
            if o.t > killed_at + back_s + SETTLE_S and not o.ok]
    assert {detail for _, detail in late} <= {"503" + RETRY_AFTER}, late
