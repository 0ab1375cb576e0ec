"""Every port a Ray pod's processes listen on, and who chose it: one table for the container
ports the worker groups declare and for the check that no two of them collide.

Ray binds its own fixed ports (GCS, dashboard, client server, the agents, HAProxy's stats)
in the same network namespace as Serve's HTTP port and the metrics port the stack chooses;
two processes asking for one port means one of them fails to start, in the pod, after
deploy. Pure, so validation and the policy pack can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from infra.ingress_environment import HAPROXY_METRICS_PORT
from infra.names import (
    AUTOSCALER_METRICS_PORT_NAME,
    CLIENT_PORT_NAME,
    DASHBOARD_METRICS_PORT_NAME,
    DASHBOARD_PORT_NAME,
    GCS_PORT_NAME,
    HAPROXY_METRICS_PORT_NAME,
    METRICS_PORT_NAME,
    SERVE_PORT_NAME,
)
from infra.ray_internals import AUTOSCALER_METRICS_PORT

if TYPE_CHECKING:
    from infra.config import StackConfig

GCS_PORT: Final = 6379  # ray.ray_constants.DEFAULT_PORT
DASHBOARD_PORT: Final = 8265  # ray.ray_constants.DEFAULT_DASHBOARD_PORT
CLIENT_PORT: Final = 10001  # the Ray Client server's port, KubeRay's default
DASHBOARD_METRICS_PORT: Final = 44227  # ray.dashboard.consts.DASHBOARD_METRIC_PORT
DASHBOARD_AGENT_PORT: Final = 52365  # ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT
HAPROXY_STATS_PORT: Final = 8404  # ray.serve constants RAY_SERVE_HAPROXY_STATS_PORT


@dataclass(frozen=True)
class PodPort:
    number: int
    owner: str  # the config field that sets it, or the Ray process that binds it
    name: str | None = None  # its container port name; None: bound but not declared
    configurable: bool = False  # `owner` is a stack field path

    def container_port(self) -> dict[str, object]:
        return {"containerPort": self.number, "name": self.name}


def pod_ports(stack: StackConfig, head: bool) -> list[PodPort]:
    """The ports a head (or worker) pod listens on, declared or not."""
    ports = [
        PodPort(stack.serve.http.port, "serve.http.port", SERVE_PORT_NAME, configurable=True),
        PodPort(stack.observability.metrics_port, "observability.metrics_port",
                METRICS_PORT_NAME, configurable=True),
        PodPort(DASHBOARD_AGENT_PORT, "Ray's dashboard agent"),
    ]
    if stack.serve.haproxy:  # every node's HAProxy takes the serve port and exports metrics
        ports += [PodPort(HAPROXY_METRICS_PORT, "HAProxy's metrics", HAPROXY_METRICS_PORT_NAME),
                  PodPort(HAPROXY_STATS_PORT, "HAProxy's stats page")]
    if head:
        ports += [
            PodPort(GCS_PORT, "Ray's GCS", GCS_PORT_NAME),
            PodPort(DASHBOARD_PORT, "Ray's dashboard", DASHBOARD_PORT_NAME),
            PodPort(CLIENT_PORT, "Ray's client server", CLIENT_PORT_NAME),
            PodPort(AUTOSCALER_METRICS_PORT, "the autoscaler's metrics",
                    AUTOSCALER_METRICS_PORT_NAME),
            PodPort(DASHBOARD_METRICS_PORT, "the dashboard's metrics",
                    DASHBOARD_METRICS_PORT_NAME),
        ]
    return ports


def container_ports(stack: StackConfig, head: bool) -> list[dict[str, object]]:
    """The declared ones, as the container lists them (sorted by name)."""
    declared = [port for port in pod_ports(stack, head) if port.name is not None]
    return [port.container_port() for port in sorted(declared, key=lambda p: str(p.name))]


def port_collisions(stack: StackConfig) -> list[tuple[str, str]]:
    """(field path, message) for each port a stack field sets that another process binds."""
    problems: dict[tuple[str, str], str] = {}
    for head in (True, False):
        ports = pod_ports(stack, head)
        for index, port in enumerate(ports):
            if not port.configurable:
                continue
            for other in ports[:index] + ports[index + 1:]:
                if other.number != port.number or (other.configurable and other.owner < port.owner):
                    continue
                taken = f"servestack:{other.owner}" if other.configurable else other.owner
                pod = "head pod" if head else "every Ray pod"
                problems.setdefault((port.owner, other.owner), (
                    f"port {port.number} is also {taken}'s, in the {pod}; two processes cannot "
                    f"listen on one port, so one of them would fail to start: choose another"))
    return [(path, message) for (path, _), message in problems.items()]
