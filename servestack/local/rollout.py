"""Waiting for a deployed Serve config to come up, and telling why it did not."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from servestack.local.dashboard import (
    DashboardAuthError,
    DashboardClient,
    DashboardError,
    DashboardUnreachableError,
)
from servestack.local.serve_status import Rollout, ServeSnapshot

POLL_INTERVAL_S = 1.0


class DeployFailedError(RuntimeError):
    """Ray reported DEPLOY_FAILED or UNHEALTHY; `rollout.failed` carries Ray's messages."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout
        names = ", ".join(app.name for app in rollout.failed)
        super().__init__(f"application(s) failed to deploy: {names}")


class RolloutTimeoutError(RuntimeError):
    """Not every application reached RUNNING in time; `rollout.pending` names the laggards."""

    def __init__(self, rollout: Rollout, timeout_s: float) -> None:
        self.rollout = rollout
        super().__init__(
            f"not RUNNING after {timeout_s:.0f} s: {', '.join(rollout.pending)}. Replicas may be "
            "waiting for CPUs or memory (`ray status`), or still loading models; raise --timeout "
            "or look at the Serve logs in the dashboard"
        )


def wait_for_rollout(
    client: DashboardClient,
    expected: Iterable[str],
    timeout_s: float,
    on_poll: Callable[[ServeSnapshot, Rollout], None] = lambda snapshot, rollout: None,
    poll_interval_s: float = POLL_INTERVAL_S,
) -> ServeSnapshot:
    """Poll the Serve REST API until every expected app is RUNNING; raise on failure or timeout."""
    names = tuple(expected)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            snapshot = client.snapshot()
        except (DashboardUnreachableError, DashboardAuthError):
            raise
        except DashboardError:
            snapshot = None  # e.g. 503 while the controller restarts: ask again
        if snapshot is not None:
            rollout = snapshot.rollout(names)
            on_poll(snapshot, rollout)
            if rollout.failed:
                raise DeployFailedError(rollout)
            if rollout.done:
                return snapshot
            if time.monotonic() > deadline:
                raise RolloutTimeoutError(rollout, timeout_s)
        elif time.monotonic() > deadline:
            raise DashboardError(f"the Serve REST API at {client.url} kept failing for "
                                 f"{timeout_s:.0f} s")
        time.sleep(poll_interval_s)
