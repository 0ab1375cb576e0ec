"""Serve honours `target_capacity` the way the upgrade plan counts it.

During an incremental upgrade KubeRay sends each cluster's Serve config again with a
`target_capacity` (the dashboard's `PUT /api/serve/applications/`, as here), and Serve
scales every deployment's replica bounds by it. The upgrade plan sizes each step with
`serve_replicas_at`; this runs the steps on real Serve and counts the RUNNING replicas.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from apps.embeddings.spec import EMBEDDINGS
from infra.serve_config import build_serve_config
from infra.upgrade_plan import serve_replicas_at
from tests.faults.conftest import LOCAL_SERVE, LocalServe, local_serve, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

REPLICAS = 3  # min = max: no load decides anything, only the capacity
APP = EMBEDDINGS.with_overrides({"deployments": {"Embedder": {
    "autoscaling": {"min_replicas": REPLICAS, "max_replicas": REPLICAS},
    "resources": {"num_cpus": 0.25},
}}})
DEPLOYMENT = "Embedder"
STEPS = (100, 50, 0, 40, 100)
"""KubeRay's walk over an old cluster (100 → 50 → 0) and back up, plus 40 %, where Serve's
half-up rounding (1.2 → 1) and a ceiling (2) part ways."""
SETTLE_S = 3.0  # the count must hold, not pass through


@pytest.fixture(scope="module")
def served() -> Iterator[LocalServe]:
    with local_serve([APP]) as serve_handle:
        yield serve_handle


def _running(served: LocalServe) -> int:
    return served.deployment_status(APP.name, DEPLOYMENT)[1]


def test_serve_keeps_the_replicas_the_upgrade_plan_counts_at_each_target_capacity(
    served: LocalServe,
) -> None:
    config = build_serve_config([APP], LOCAL_SERVE)
    recorded: list[tuple[int, int, int]] = []
    for percent in STEPS:
        served.client.deploy({**config, "target_capacity": percent})
        expected = serve_replicas_at(REPLICAS, percent)
        try:
            wait_until(lambda e=expected: _running(served) == e  # type: ignore[misc]
                       and len(served.replica_actors(APP.name)) == e, 240)
        except TimeoutError:
            pytest.fail(f"target_capacity {percent}: Serve kept {_running(served)} RUNNING "
                        f"replicas, the plan counts {expected}; so far {recorded}")
        time.sleep(SETTLE_S)
        recorded.append((percent, expected, _running(served)))
    print("\ntarget_capacity  planned  RUNNING")
    for percent, planned, running in recorded:
        print(f"{percent:>14}%  {planned:>7}  {running:>7}")
    assert [running for _, _, running in recorded] == [3, 2, 0, 1, 3]
    assert all(planned == running for _, planned, running in recorded)
