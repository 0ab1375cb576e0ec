"""Asking Serve's HTTP side directly: does the proxy answer, and what does each app serve?

The Serve REST API reports what the controller believes. It kept saying RUNNING/HEALTHY
while the proxy was dead, and it says RUNNING when a replica refused a model update and
kept its old model (apps/rollout.py). So `serve` and `status` also ask over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import requests
from pydantic import ValidationError

from apps.rollout import RolloutReport

PROBE_TIMEOUT_S = 5.0
PROBES_PER_APP = 3
"""Each GET reaches one replica; a few reach most replicas of a small deployment."""


@dataclass(frozen=True)
class AppProbe:
    """One app's answer to `GET <route_prefix>`: its rollout report, if it keeps one."""

    name: str
    url: str
    problem: str | None = None
    rollout: RolloutReport | None = None


def proxy_problem(base_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when Serve's proxy answers its health route, else what went wrong."""
    url = f"{base_url}/-/healthz"
    try:
        response = requests.get(url, timeout=timeout_s)
    except requests.RequestException as error:
        return f"Serve's HTTP proxy at {base_url} does not answer ({type(error).__name__})"
    if response.status_code != 200:
        return f"Serve's HTTP proxy at {base_url} answered {url} with {response.status_code}"
    return None


def probe_app(name: str, route_prefix: str, base_url: str,
              attempts: int = PROBES_PER_APP) -> AppProbe:
    """The first failed rollout any replica reports, else the last report seen."""
    url = base_url + route_prefix
    seen: RolloutReport | None = None
    for _ in range(attempts):
        try:
            response = requests.get(url, timeout=PROBE_TIMEOUT_S)
        except requests.RequestException as error:
            return AppProbe(name, url, problem=f"no answer from {url} ({type(error).__name__})")
        if response.status_code != 200:
            return AppProbe(name, url, problem=f"{url} answered {response.status_code}")
        try:
            raw = response.json().get("rollout")
            report = RolloutReport.model_validate(raw) if raw else None
        except (ValueError, AttributeError, ValidationError):
            report = None
        if report is None:
            return AppProbe(name, url)  # an app without a model rollout to report
        if report.failed:
            return AppProbe(name, url, rollout=report)
        seen = report
    return AppProbe(name, url, rollout=seen)


def probe_apps(routes: Iterable[tuple[str, str]], base_url: str) -> list[AppProbe]:
    """`(app name, route prefix)` pairs → one probe each, in name order."""
    return [probe_app(name, prefix, base_url) for name, prefix in sorted(routes)]
