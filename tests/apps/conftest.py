"""Fixtures of the app tests: one Ray for all of tests/apps, apps deployed once.

Ray starts on first use and stops as soon as the last test of tests/apps has run (not at
session end), so test modules elsewhere can start their own in-process Ray afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config import HttpOptions, ServeOptions
from tests.apps.harness import LOCAL_SERVE, Checkpoints, ServedApps

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After a test's own teardown, stop Ray if the next test lives outside tests/apps."""
    yield
    if nextitem is None or HERE not in Path(nextitem.path).resolve().parents:
        LOCAL_SERVE.stop()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    """Two checkpoints built by the real builder, from different seeds."""
    from apps.classifier.training import build_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return Checkpoints(
        seed0=build_checkpoint(root / "seed0.pt", seed=0).path,
        seed1=build_checkpoint(root / "seed1.pt", seed=1).path,
    )


@pytest.fixture(scope="session")
def served(checkpoints: Checkpoints) -> Iterator[ServedApps]:
    """All three apps from one Serve config (their replicas start in parallel)."""
    base_url = LOCAL_SERVE.start()
    port = int(base_url.rsplit(":", 1)[1])
    apps = ServedApps(
        base_url=base_url,
        serve=ServeOptions(http=HttpOptions(host="127.0.0.1", port=port)),
        checkpoint_uri=Checkpoints.uri(checkpoints.seed0),
    )
    apps.redeploy()
    yield apps
    LOCAL_SERVE.stop()
