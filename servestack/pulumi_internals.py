"""The Pulumi SDK internals the offline engine needs, in one place.

`servestack.offline` replays the program under Pulumi's mock monitor and reads what it would
send over the wire. That needs a few things Pulumi does not publish as API: the signature keys
that mark secrets and resource references in serialised properties (`rpc._special_*`), the
SDK's `_sync_await` to serialise inside a gRPC handler, the rpc (de)serialisers, the root-stack
context variable, and the attributes of `MockMonitor` a subclass builds on. Nothing else in the
repo reaches into `pulumi.runtime` internals, except `infra/stack_reading.py`, which reads
`pulumi.runtime.config.CONFIG`; it is the program and cannot import the tool, so it is only
covered by the same test.

Tested with pulumi 3.272; pyproject.toml pins `pulumi>=3.272,<3.273` to match.
tests/servestack/test_pulumi_internals.py names the attribute that an upgrade removed or
changed; widen the pin only after it passes on the new version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Final, TypeVar

import pulumi
import pulumi.runtime.settings
from google.protobuf import struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import Stack
from pulumi.runtime.sync_await import _sync_await

__all__ = [
    "MONITOR_ATTRIBUTES", "RESOURCE_SIG", "SECRET_SIG", "SIG_KEY", "MockMonitor",
    "deserialize_properties", "registration", "reset_root_stack", "root_stack_outputs",
    "serialize_properties", "sync_await",
]

T = TypeVar("T")

SIG_KEY: Final[str] = rpc._special_sig_key
"""Key of a serialised map that says what the map encodes (a secret, a resource, an asset…)."""
SECRET_SIG: Final[str] = rpc._special_secret_sig
"""`{SIG_KEY: SECRET_SIG, "value": …}` wraps a secret value."""
RESOURCE_SIG: Final[str] = rpc._special_resource_sig
"""`{SIG_KEY: RESOURCE_SIG, "urn": …}` is a reference to another resource."""

MONITOR_ATTRIBUTES: Final = ("mocks", "resources", "make_urn", "RegisterResource",
                             "ReadResource")
"""What `servestack.offline.RecordingMonitor` uses of `MockMonitor` (not exported by
`pulumi.runtime`, though `set_mocks(monitor=…)` takes one) besides `__init__(mocks)`."""


def sync_await(awaitable: Awaitable[T]) -> T:
    """Wait for `awaitable` from synchronous code running on Pulumi's loop (a mock handler)."""
    return _sync_await(awaitable)


def serialize_properties(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    """Plain values → the protobuf Struct a provider sends back (secrets keep their wrapper)."""
    return sync_await(rpc.serialize_properties(dict(properties), {}))


def deserialize_properties(struct: struct_pb2.Struct) -> Any:
    """A protobuf Struct from the wire → Python values, as the SDK would read it."""
    return rpc.deserialize_properties(struct)


def registration(urn: str, id_: str, state: Mapping[str, Any]) -> Any:
    """The record `MockMonitor.resources` keeps per URN (read back by invokes and reads)."""
    return MockMonitor.ResourceRegistration(urn, id_, dict(state))


def reset_root_stack() -> None:
    """Forget the previous run's root stack, so a new run does not become its child."""
    pulumi.runtime.settings.ROOT.set(None)


def root_stack_outputs() -> dict[str, Any]:
    """The outputs the program exported (`pulumi.export`), as the root Stack resource holds
    them."""
    root = pulumi.runtime.settings.get_root_resource()
    return dict(root.outputs) if isinstance(root, Stack) else {}
