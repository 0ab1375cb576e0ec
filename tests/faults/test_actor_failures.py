"""Killing Serve's actors under steady load: a replica, then the controller.

The embeddings app runs with two replicas (the real model), so a dead replica's share of
the traffic can move to the other one while Serve replaces it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from apps.embeddings.spec import EMBEDDINGS
from tests.faults.conftest import LocalServe, SteadyLoad, local_serve, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.faults, pytest.mark.timeout(420)]

# Two replicas as min = max autoscaling, keeping the deployment's autoscaled shape (a fixed
# `num_replicas` works too now that the builder clears the code's autoscaling_config).
APP = EMBEDDINGS.with_overrides({"deployments": {"Embedder": {
    "autoscaling": {"min_replicas": 2, "max_replicas": 2}, "resources": {"num_cpus": 0.5},
    # Probe often, so a dead replica is noticed fast (Ray's default period is 10 s); the
    # timeout stays generous so a replica slowed by busy shared cores is not replaced.
    "health_check_period_s": 1,
}}})
DEPLOYMENT = "Embedder"
REPLICAS = 2
CONCURRENCY = 4
BODY = {"texts": ["replicas come and go; requests keep flowing"]}
# Requests in flight to the killed replica are replayed on the live one: by HAProxy under
# serve.haproxy (retry-on empty-response, on the whole request it buffered: servestack's
# config wrapper, apps/haproxy_config.py), by the ingress layer (apps/ingress.py; POST /embed
# is idempotent) behind Ray's proxy. Before, up to 8 failed as text/plain 500s, and with
# Ray's own HAProxy config 1-2 in 3 of 17 kills (HAProxy had forwarded the headers before the
# body arrived, so it held no copy to replay).
RECOVERY_BOUND_S = 90.0  # a new replica loads the model; two shared cores are slow at it
CONTROLLER_BACK_BOUND_S = 60.0


@pytest.fixture(scope="module")
def served() -> Iterator[LocalServe]:
    with local_serve([APP]) as serve_handle:
        yield serve_handle


def _replaced(served: LocalServe, killed: str) -> bool:
    """A new replica actor exists in the killed one's place and every replica is RUNNING.

    A replacement only exists once the controller has noticed the death, so its presence
    rules out reading the controller's stale "2 RUNNING" from before it noticed."""
    replicas = served.replica_actors(APP.name)
    if len(replicas) != REPLICAS or killed in replicas:
        return False
    status, running = served.deployment_status(APP.name, DEPLOYMENT)
    return status == "HEALTHY" and running == REPLICAS


def test_killed_replica_is_replaced_and_no_request_fails(
    served: LocalServe,
) -> None:
    import ray

    replicas = served.replica_actors(APP.name)
    assert len(replicas) == REPLICAS
    victim = sorted(replicas)[0]
    with SteadyLoad(served.url(APP), BODY, CONCURRENCY) as load:
        time.sleep(3)
        killed_at = load.now()
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        recovery_s = wait_until(lambda: _replaced(served, victim), RECOVERY_BOUND_S)
        recovered_at = load.now()
        time.sleep(2)
    failures = load.failures()
    during = load.between(killed_at, recovered_at)
    after = load.between(recovered_at + 0.5, load.now())
    print(f"\nreplica {victim} killed at t={killed_at:.1f} s; deployment HEALTHY with "
          f"{REPLICAS} replicas again after {recovery_s:.1f} s")
    print(f"requests: {len(load.outcomes)} total, {len(failures)} failed "
          f"({[(round(f.t, 2), f.detail) for f in failures]}), "
          f"{sum(o.ok for o in during)} succeeded during recovery")
    print(load.timeline())
    assert not failures
    assert sum(o.ok for o in during) > 0, "the surviving replica served nothing meanwhile"
    assert after and all(o.ok for o in after), "requests still failing after recovery"


def test_serving_continues_while_the_controller_is_down_and_it_comes_back(
    served: LocalServe,
) -> None:
    import ray

    from infra.ray_internals import actor_id

    controller = ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
    before = actor_id(controller)
    # The state API lags the controller: wait until it lists every replica.
    wait_until(lambda: len(served.replica_actors(APP.name)) == REPLICAS, 30)
    replicas = served.replica_actors(APP.name)
    with SteadyLoad(served.url(APP), BODY, concurrency=2) as load:
        time.sleep(1)
        killed_at = load.now()
        ray.kill(controller, no_restart=False)

        def controller_back() -> bool:
            restarted = ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
            ray.get(restarted.check_alive.remote(), timeout=5)
            status, running = served.deployment_status(APP.name, DEPLOYMENT)
            return status == "HEALTHY" and running == REPLICAS

        back_s = wait_until(controller_back, CONTROLLER_BACK_BOUND_S)
        # Keep loading at least 5 s after the kill, however fast the controller returned.
        time.sleep(max(0.0, killed_at + 5 - load.now()))
        window_end = load.now()
    during = load.between(killed_at, window_end)
    print(f"\ncontroller killed at t={killed_at:.1f} s; answering again with the deployment "
          f"HEALTHY after {back_s:.1f} s; {len(during)} requests from the kill to "
          f"t={window_end:.1f} s, {sum(not o.ok for o in during)} failed")
    print(load.timeline())
    assert during and all(o.ok for o in during)
    assert not load.failures()
    assert served.replica_actors(APP.name) == replicas, "replicas were restarted"
    # Ray restarts a detached actor under the same id; what matters is that it answers.
    assert actor_id(ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")) == before
