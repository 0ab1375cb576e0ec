"""Free loopback ports that nothing will claim later: for private clusters that run beside
other engineers' clusters on one machine.

A port the kernel hands out for `bind(("127.0.0.1", 0))` comes from its ephemeral range, the
same range every outgoing connection takes its local port from. Ray opens hundreds of those,
so a port picked that way and bound only seconds later (HAProxy binds its stats and metrics
ports when Serve first starts it, and again on every restart) can be taken in between. Ports
are therefore drawn from below the ephemeral range and outside every range Ray itself takes.
"""

from __future__ import annotations

import random
import socket
import threading
from contextlib import ExitStack
from pathlib import Path

from infra.ray_defaults import SERVE_HTTP_PORT

RAY_DEFAULT_PORTS = frozenset({6379, SERVE_HTTP_PORT, 8076, 8080, 8265, 8404, 8500, 9101, 9500,
                               10001, 52365, 52366})
"""Ports a Ray head (or its HAProxy and fallback proxy) takes by default, e.g. the dashboard
agent's 52365."""
RAY_PORT_RANGES = (range(10002, 20000), range(30000, 31001), range(40000, 41001))
"""Worker ports, and the direct-ingress HTTP and gRPC ports replicas bind."""
LISTENER_FLOOR = 20000
"""The lowest port handed out: above the registered services and Ray's worker ports."""
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_EPHEMERAL_DEFAULT = range(32768, 61000)
MAX_TRIES = 200

_handed_out: set[int] = set()
_lock = threading.Lock()


def ephemeral_ports() -> range:
    """The kernel's range for outgoing connections' local ports (Linux's default elsewhere)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return LINUX_EPHEMERAL_DEFAULT
    return range(low, high + 1)


def candidate_ports() -> list[int]:
    """Every port a private cluster may listen on: never one the kernel gives an outgoing
    connection, never one Ray takes by default or for its workers."""
    outside_ray = [port for port in range(LISTENER_FLOOR, 65536)
                   if port not in RAY_DEFAULT_PORTS and not any(port in r for r in RAY_PORT_RANGES)]
    ephemeral = ephemeral_ports()
    # A kernel tuned to lend every port to outgoing connections leaves no quiet range.
    return [port for port in outside_ray if port not in ephemeral] or outside_ray


def _bindable(port: int, held: ExitStack) -> bool:
    probe = held.enter_context(socket.socket())
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports, none handed out before in this process: each
    stays bound until all are chosen, and none is in the range outgoing connections use."""
    candidates = candidate_ports()
    chosen: list[int] = []
    with _lock, ExitStack() as held:
        for port in random.sample(candidates, min(len(candidates), MAX_TRIES * count)):
            if len(chosen) == count:
                break
            if port not in _handed_out and _bindable(port, held):
                chosen.append(port)
        if len(chosen) < count:
            raise RuntimeError(f"no {count} free ports outside Ray's and the kernel's "
                               f"ephemeral ports after {MAX_TRIES * count} tries")
        _handed_out.update(chosen)
    return chosen


def free_port() -> int:
    """A free loopback port that nothing will claim after we picked it."""
    return free_ports(1)[0]
