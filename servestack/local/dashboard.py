"""Client for the Ray dashboard's Serve REST API, the endpoint KubeRay deploys through."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests

from servestack.local.auth import auth_headers
from servestack.local.serve_status import ServeSnapshot

SERVE_APPLICATIONS = "/api/serve/applications/"


class DashboardError(RuntimeError):
    """The dashboard could not be reached or refused a request; the message says which and why."""


class DashboardUnreachableError(DashboardError):
    """Nothing answers HTTP on the dashboard port: no Ray head is running there."""


class DashboardAuthError(DashboardError):
    """A dashboard answered but rejected the token: another cluster, or a different token."""


@dataclass(frozen=True)
class DashboardClient:
    url: str
    token: str
    timeout_s: float = 10.0

    def version(self) -> dict[str, Any]:
        """Ray's `/api/version`; also the cheap "is this our Ray, and does it accept us?" probe."""
        body: dict[str, Any] = self._request("GET", "/api/version").json()
        return body

    def wait_until_up(self, timeout_s: float) -> DashboardError | None:
        """Ask for the version until it answers (None) or `timeout_s` has passed (the last
        error): a head's dashboard comes up a while after `ray start` returns."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.version()
                return None
            except DashboardError as error:
                if time.monotonic() > deadline:
                    return error
            time.sleep(0.5)

    def gcs_healthy(self, timeout_s: float = 3.0) -> bool:
        """Whether the head's GCS answers (the dashboard's own probe); False after a crash."""
        try:
            self._request("GET", "/api/gcs_healthz", timeout_s=timeout_s)
        except DashboardError:
            return False
        return True

    def snapshot(self) -> ServeSnapshot:
        response = self._request("GET", SERVE_APPLICATIONS)
        return ServeSnapshot.model_validate(response.json())

    def deploy(self, serve_config: dict[str, Any]) -> None:
        """Declaratively replace every Serve application, as `serve deploy` and KubeRay do."""
        self._request("PUT", SERVE_APPLICATIONS, data=json.dumps(serve_config, sort_keys=True))

    def alive_node_labels(self) -> list[dict[str, str]]:
        """The Ray node labels of every alive node (the state API, `ray list nodes`)."""
        body = self._request("GET", "/api/v0/nodes").json()
        nodes = body.get("data", {}).get("result", {}).get("result", [])
        return [{str(k): str(v) for k, v in (node.get("labels") or {}).items()}
                for node in nodes if node.get("state") == "ALIVE"]

    def shutdown_serve(self, timeout_s: float = 120.0) -> None:
        """Delete every application and stop Serve (`serve shutdown`); replicas drain first."""
        self._request("DELETE", SERVE_APPLICATIONS, timeout_s=timeout_s)

    def _request(
        self, method: str, path: str, data: str | None = None, timeout_s: float | None = None
    ) -> requests.Response:
        headers = {**auth_headers(self.token), "Content-Type": "application/json"}
        try:
            response = requests.request(
                method, self.url + path, data=data, headers=headers,
                timeout=timeout_s or self.timeout_s,
            )
        except requests.ConnectionError:
            raise DashboardUnreachableError(f"no Ray dashboard answers at {self.url}") from None
        except requests.Timeout:
            raise DashboardError(
                f"the Ray dashboard at {self.url} did not answer {method} {path} in time"
            ) from None
        if response.status_code == 401:
            raise DashboardAuthError(
                f"the Ray dashboard at {self.url} wants an auth token and none was found "
                "(RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token)"
            )
        if response.status_code == 403:
            raise DashboardAuthError(
                f"the Ray dashboard at {self.url} rejected the auth token (403): it belongs to "
                "a cluster started with another token. Stop that cluster or pick other ports "
                "(--dashboard-port/--ray-port)"
            )
        if response.status_code >= 400:
            raise DashboardError(
                f"{method} {self.url}{path} failed with {response.status_code}: "
                f"{response.text.strip()}"
            )
        return response
