"""Private clusters share the machine: their ports must be distinct and none Ray takes itself."""

from __future__ import annotations

import socket

import pytest

import servestack.local.free_ports as free_ports_module
from servestack.local.free_ports import (
    RAY_DEFAULT_PORTS,
    RAY_PORT_RANGES,
    ephemeral_ports,
    free_ports,
)
from servestack.local.head import LocalPorts


def test_free_ports_are_distinct_and_none_is_one_ray_claims() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert not [p for p in ports
                if p in RAY_DEFAULT_PORTS or any(p in r for r in RAY_PORT_RANGES)]
    chosen = LocalPorts.free()
    assert len({chosen.http, chosen.gcs, chosen.dashboard, chosen.metrics}) == 4


def test_no_port_comes_from_the_range_outgoing_connections_take() -> None:
    """A port in the kernel's ephemeral range can be taken by any outgoing connection between
    the pick and the bind (HAProxy's metrics port was, under CI's Ray load)."""
    ephemeral = ephemeral_ports()
    assert ephemeral.start > 1024  # the file was read, or Linux's default stands in
    ports = free_ports(32)
    assert not [p for p in ports if p in ephemeral]


def test_a_port_is_never_handed_out_twice_in_one_process() -> None:
    """Two clusters started one after the other pick their ports before either binds them."""
    first, second = free_ports(50), free_ports(50)
    assert not set(first) & set(second)


def test_a_port_already_bound_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken, socket.socket() as released:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        released.bind(("127.0.0.1", 0))
        busy, spare = taken.getsockname()[1], released.getsockname()[1]
        released.close()
        monkeypatch.setattr(free_ports_module, "candidate_ports", lambda: [busy, spare])
        assert free_ports(1) == [spare]
