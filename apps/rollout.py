"""What a replica reports about its last live update: applied, or failed and still serving.

Ray replaces a replica whose `reconfigure` raises, and the replacements fail the same way,
so a bad model URI would take a working app down. A replica that already serves a model
therefore keeps it when an update fails and records why here instead. Ray still reports
the app RUNNING, so this report is the only place the failure shows: each app's
`GET <route>/` carries it as `rollout`, and `servestack serve` / `status` read it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

logger = logging.getLogger("ray.serve")


class RolloutReport(BaseModel):
    """The outcome of the last `reconfigure`, as `GET <route>/` shows it under `rollout`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["applied", "failed"]
    requested: str | None = None
    """What the update asked for, e.g. the checkpoint URI."""
    reason: str | None = None
    """Why it failed: the loader's message, naming the URI."""
    serving: dict[str, Any] | None = None
    """What answers requests now (for a model: uri, version, weights_sha256)."""

    @classmethod
    def refused(
        cls, user_config: Mapping[str, Any] | None, key: str, error: Exception,
        serving: dict[str, Any],
    ) -> RolloutReport:
        """The report of an update the replica refused, logged too: Ray shows nothing.

        `key` names the settings field that carries the model URI; `serving` is the
        `describe()` of the model the replica keeps."""
        requested = ((user_config or {}).get("settings") or {}).get(key)
        logger.error("user_config update refused, still serving %s: %s", serving["uri"], error)
        return cls(status="failed", requested=str(requested), reason=str(error), serving=serving)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def summary(self) -> str:
        serving = self.serving or {}
        now = f"{serving.get('version', '?')} ({serving.get('uri', '?')})"
        if not self.failed:
            return f"serving {now}"
        return f"rollout of {self.requested} FAILED: {self.reason}; still serving {now}"
