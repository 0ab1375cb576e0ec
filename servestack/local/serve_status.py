"""Serve's state as `GET /api/serve/applications/` reports it, reduced to what a rollout needs.

Only the fields servestack reads are modelled; everything else Ray sends is ignored, so
a Ray that adds fields does not break `status`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

FAILED = frozenset({"DEPLOY_FAILED", "UNHEALTHY"})
"""Application or deployment states that end a rollout: Ray gave up or the replicas are sick."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Reported(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReplicaState(_Reported):
    state: str
    replica_id: str = ""
    node_id: str | None = None  # hex id of the Ray node it runs on (the rehearsal's placement)


class DeploymentState(_Reported):
    name: str
    status: str
    message: str = ""
    target_num_replicas: int | None = None
    replicas: tuple[ReplicaState, ...] = ()

    @property
    def running_replicas(self) -> int:
        return sum(1 for replica in self.replicas if replica.state == "RUNNING")

    @property
    def failed(self) -> bool:
        return self.status in FAILED


class ApplicationState(_Reported):
    name: str
    status: str
    route_prefix: str | None = None
    message: str = ""
    deployments: dict[str, DeploymentState] = Field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Judged by the app's own status, which Ray derives from its deployments and resets to
        DEPLOYING on every deploy; a deployment's status can still describe the previous
        config for a moment after a redeploy."""
        return self.status in FAILED

    def failure_messages(self) -> list[str]:
        """What Ray said went wrong: the app's message and each failed deployment's traceback."""
        messages = [clean_message(self.message)] if self.message.strip() else []
        for name in sorted(self.deployments):
            deployment = self.deployments[name]
            if deployment.failed and deployment.message.strip():
                messages.append(f"{name}: {clean_message(deployment.message)}")
        return messages

    def failure_summary(self) -> list[str]:
        """The last line of each failure message: for a traceback, the exception itself."""
        return [message.splitlines()[-1] for message in self.failure_messages()]


class HttpBinding(_Reported):
    host: str | None = None
    port: int | None = None


class ServeSnapshot(_Reported):
    """One answer of the Serve REST API; `controller_info` is empty when Serve is not running."""

    controller_info: dict[str, object] = Field(default_factory=dict)
    http_options: HttpBinding = HttpBinding()
    applications: dict[str, ApplicationState] = Field(default_factory=dict)

    @property
    def serve_running(self) -> bool:
        return bool(self.controller_info)

    def rollout(self, expected: Iterable[str]) -> Rollout:
        return Rollout.of(self, expected)


class Rollout(_Reported):
    """Where the expected applications stand: all running, some failed, or still moving."""

    running: tuple[str, ...]
    failed: tuple[ApplicationState, ...]
    pending: tuple[str, ...]

    @classmethod
    def of(cls, snapshot: ServeSnapshot, expected: Iterable[str]) -> Rollout:
        running: list[str] = []
        failed: list[ApplicationState] = []
        pending: list[str] = []
        for name in sorted(expected):
            app = snapshot.applications.get(name)
            if app is not None and app.failed:
                failed.append(app)
            elif app is not None and app.status == "RUNNING":
                running.append(name)
            else:
                pending.append(name)
        return cls(running=tuple(running), failed=tuple(failed), pending=tuple(pending))

    @property
    def done(self) -> bool:
        return not self.failed and not self.pending


def clean_message(message: str) -> str:
    """Ray's messages carry terminal colour codes; strip them so they read in any output."""
    return _ANSI.sub("", message).strip()
