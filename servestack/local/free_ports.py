"""Free loopback ports that no Ray process will claim later: for private clusters that run
beside other engineers' clusters on one machine."""

from __future__ import annotations

import socket
from contextlib import ExitStack

RAY_DEFAULT_PORTS = frozenset({6379, 8000, 8076, 8080, 8265, 8404, 8500, 9101, 9500, 10001,
                               52365, 52366})
"""Ports a Ray head (or its HAProxy and fallback proxy) takes by default, e.g. the dashboard
agent's 52365."""
RAY_PORT_RANGES = (range(10002, 20000), range(30000, 31001), range(40000, 41001))
"""Worker ports, and the direct-ingress HTTP and gRPC ports replicas bind."""
MAX_TRIES = 100


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports that no Ray process will claim after we picked
    them: each stays bound until all are chosen, so the kernel cannot hand one out twice."""
    chosen: list[int] = []
    with ExitStack() as held:
        for _ in range(MAX_TRIES * count):
            if len(chosen) == count:
                break
            probe = held.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
            if port not in RAY_DEFAULT_PORTS and not any(port in r for r in RAY_PORT_RANGES):
                chosen.append(port)
    if len(chosen) < count:
        raise RuntimeError(f"no {count} free ports outside Ray's default ports after "
                           f"{MAX_TRIES * count} tries")
    return chosen


def free_port() -> int:
    """A free loopback port that no Ray process will claim after we picked it."""
    return free_ports(1)[0]
