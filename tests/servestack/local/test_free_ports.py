"""Private clusters share the machine: their ports must be distinct and none Ray takes itself."""

from __future__ import annotations

from servestack.local.free_ports import RAY_DEFAULT_PORTS, RAY_PORT_RANGES, free_ports
from servestack.local.head import LocalPorts


def test_free_ports_are_distinct_and_none_is_one_ray_claims() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert not [p for p in ports
                if p in RAY_DEFAULT_PORTS or any(p in r for r in RAY_PORT_RANGES)]
    chosen = LocalPorts.free()
    assert len({chosen.http, chosen.gcs, chosen.dashboard, chosen.metrics}) == 4
