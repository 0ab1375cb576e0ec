"""Free loopback ports that no Ray process will claim later: for private clusters that run
beside other engineers' clusters on one machine."""

from __future__ import annotations

import socket

RAY_DEFAULT_PORTS = frozenset({6379, 8000, 8076, 8080, 8265, 8404, 8500, 9101, 9500, 10001,
                               52365, 52366})
"""Ports a Ray head (or its HAProxy and fallback proxy) takes by default, e.g. the dashboard
agent's 52365."""
RAY_PORT_RANGES = (range(10002, 20000), range(30000, 31001), range(40000, 41001))
"""Worker ports, and the direct-ingress HTTP and gRPC ports replicas bind."""


def free_port() -> int:
    """A free loopback port that no Ray process will claim after we picked it."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in RAY_DEFAULT_PORTS and not any(port in r for r in RAY_PORT_RANGES):
            return port
    raise RuntimeError("no free port outside Ray's default ports after 100 tries")
