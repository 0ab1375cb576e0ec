"""The Pulumi internals behind servestack.pulumi_internals still exist and still mean the same.

A Pulumi upgrade that renames, removes or reshapes one fails here, naming the attribute,
instead of as a hang or a wrong render deep inside the offline engine.
"""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format
from pulumi.runtime import rpc

from tests.internals import assert_pinned_as_documented, assert_takes, internal

# The shim and the offline engine are imported inside the tests that use them: if an upgrade
# breaks the shim's own imports, the attribute checks below still run and name the attribute.

# (module, attribute, parameters its callers pass, by name, in order) for every callable.
CALLABLES = [
    ("pulumi.runtime.sync_await", "_sync_await", ["awaitable"]),
    ("pulumi.runtime.rpc", "serialize_properties", ["inputs", "property_deps"]),
    ("pulumi.runtime.rpc", "deserialize_properties", ["props_struct"]),
    ("pulumi.runtime.settings", "get_root_resource", []),
    ("pulumi.runtime.mocks", "set_mocks",
     ["mocks", "project", "stack", "preview", "logger", "monitor"]),
]
SIGNATURES = ["_special_sig_key", "_special_secret_sig", "_special_resource_sig"]
CONTEXT_VARS = [
    ("pulumi.runtime.settings", "ROOT"),
    ("pulumi.runtime.config", "CONFIG"),  # read by infra/stack_reading.configured_keys
]


def attribute(module: str, name: str) -> Any:
    return internal("pulumi", module, name)


def test_the_installed_pulumi_is_one_the_shim_was_tested_on() -> None:
    """pyproject's pin and the shim's docstring name the same range, and it holds what runs."""
    from servestack import pulumi_internals

    assert_pinned_as_documented("pulumi", pulumi_internals.__doc__)


@pytest.mark.parametrize(("module", "name", "parameters"), CALLABLES,
                         ids=[f"{m}.{n}" for m, n, _ in CALLABLES])
def test_each_internal_callable_takes_what_we_pass(
    module: str, name: str, parameters: list[str],
) -> None:
    assert_takes("pulumi", module, name, parameters)


@pytest.mark.parametrize("name", SIGNATURES)
def test_each_wire_signature_is_a_distinct_string(name: str) -> None:
    value = attribute("pulumi.runtime.rpc", name)
    assert isinstance(value, str) and value, f"pulumi.runtime.rpc.{name} = {value!r}"
    assert len({attribute("pulumi.runtime.rpc", n) for n in SIGNATURES}) == len(SIGNATURES)


@pytest.mark.parametrize(("module", "name"), CONTEXT_VARS, ids=[n for _, n in CONTEXT_VARS])
def test_each_context_variable_we_read_is_one(module: str, name: str) -> None:
    assert isinstance(attribute(module, name), ContextVar), f"{module}.{name}"


def test_the_mock_monitor_has_what_our_recording_monitor_builds_on() -> None:
    from servestack import pulumi_internals
    from servestack.offline import OfflineMocks

    monitor = attribute("pulumi.runtime.mocks", "MockMonitor")
    assert list(inspect.signature(monitor).parameters) == ["mocks"], "MockMonitor(mocks)"
    instance = monitor(OfflineMocks())
    for name in pulumi_internals.MONITOR_ATTRIBUTES:
        assert hasattr(instance, name), f"pulumi.runtime.mocks.MockMonitor.{name}"
    assert isinstance(instance.resources, dict), "MockMonitor.resources"
    record = pulumi_internals.registration("urn:x", "id-1", {"a": 1})
    assert (record.urn, record.id, record.state) == ("urn:x", "id-1", {"a": 1}), (
        "MockMonitor.ResourceRegistration(urn, id, state)")


def test_the_root_stack_keeps_its_exports_in_outputs() -> None:
    stack = attribute("pulumi.runtime.stack", "Stack")
    assert "outputs" in inspect.get_annotations(stack), "pulumi.runtime.stack.Stack.outputs"


def test_secrets_and_references_round_trip_through_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Program → SDK serialisation → our monitor reads the signature keys back → mock state
    → our serialisation → SDK → exported outputs: every internal in one real pass."""
    from servestack.offline import RANDOM_PLACEHOLDER, run_program

    def program() -> None:
        first = pulumi.CustomResource("test:index:Thing", "first", {"plain": "x"})
        second = pulumi.CustomResource("test:index:Thing", "second", {
            "secret": pulumi.Output.secret("s3cret"), "ref": first, "nested": {"n": 1}})
        password = pulumi.CustomResource(
            "random:index/randomPassword:RandomPassword", "pw", {"length": 8, "result": None})
        pulumi.export("ref", second.urn)
        pulumi.export("password", password.result)  # type: ignore[attr-defined]
        pulumi.export("hidden", pulumi.Output.secret("shh"))

    monkeypatch.setattr("servestack.offline._run_main", program)  # the engine, another program
    run = run_program("internals", {}).check()
    first, second = run.one("test:index:Thing", "first"), run.one("test:index:Thing", "second")
    assert second.inputs == {"secret": "s3cret", "ref": first.urn, "nested": {"n": 1}}, (
        "the wire form's secret or resource signature was not recognised")
    assert second.secret_inputs == {"secret"}
    assert run.outputs["password"] == f"{RANDOM_PLACEHOLDER}-pw", "mock state did not return"
    assert run.outputs["ref"] == second.urn
    assert run.secret_outputs == {"hidden"}


def test_the_signatures_mark_what_the_sdk_puts_on_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SECRET_SIG/SIG_KEY as the SDK writes them; the shim's deserialiser keeps the mark, which
    is how the mocks' inputs stay recognisably secret."""
    from servestack import pulumi_internals
    from servestack.offline import run_program

    seen: dict[str, Any] = {}

    def program() -> None:
        async def serialise() -> None:
            struct = await rpc.serialize_properties(
                {"secret": pulumi.Output.secret("s"), "plain": "p"}, {})
            seen["wire"] = json_format.MessageToDict(struct)
            seen["back"] = pulumi_internals.deserialize_properties(struct)

        pulumi.export("serialised", pulumi.Output.from_input(serialise()))  # the run awaits it

    monkeypatch.setattr("servestack.offline._run_main", program)
    run_program("internals", {}).check()
    secret = {pulumi_internals.SIG_KEY: pulumi_internals.SECRET_SIG, "value": "s"}
    assert seen["wire"] == {"plain": "p", "secret": secret}
    assert seen["back"] == {"plain": "p", "secret": secret}, "deserialised secrets lost their mark"
