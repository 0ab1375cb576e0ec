"""Run the real Pulumi program for a stack without an engine, cloud or cluster.

Pulumi's mock monitor stands in for the engine: every resource the program registers is
recorded with its inputs (wire form: camelCase keys, numbers as floats), parent, provider and
options, and the stack outputs are resolved. Tests, `render`, `diff` and the policies all read
these records, so they judge what `pulumi up` would send, not a re-implementation of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import runpy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.proto import resource_pb2

from infra.clusters.spec import cluster_specs
from infra.config import PROJECT, REPO_ROOT, STACKS_DIR, StackConfigError
from infra.program import StackRefused
from infra.stack_file import source_from_stack_file, stack_file, stack_name, with_placeholders
from infra.stack_reading import read_config_value
from infra.validation import StackSource, parsing_once, required_secret_keys, validate_stack
from servestack.pulumi_internals import (
    RESOURCE_SIG,
    SECRET_SIG,
    SIG_KEY,
    MockMonitor,
    deserialize_properties,
    registration,
    reset_root_stack,
    root_stack_outputs,
    serialize_properties,
)

PROGRAM = REPO_ROOT / "infra"
"""Pulumi.yaml `main: infra/`: run as a directory, exactly as the language host runs it."""
SECRET_PLACEHOLDER = "offline-placeholder-secret"
RANDOM_PLACEHOLDER = "offline-random-secret"

# --- what a run records --------------------------------------------------------------------


class InvalidStackError(ValueError):
    """The program stopped before registering anything: the stack config is invalid.

    `problems` holds validate_stack's (field path, message) pairs when the program refused
    the stack (empty when it failed for another reason, e.g. a missing cloud SDK).
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.problems = error.problems if isinstance(error, StackRefused) else ()


@dataclass(frozen=True)
class RecordedOptions:
    depends_on: tuple[str, ...] = ()
    ignore_changes: tuple[str, ...] = ()
    additional_secret_outputs: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    custom_timeouts: Mapping[str, str] = field(default_factory=dict)
    providers: Mapping[str, str] = field(default_factory=dict)  # package → provider ref
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False


@dataclass(frozen=True)
class RegisteredResource:
    """One `RegisterResource` (or `ReadResource`) call, as the engine would receive it."""

    type: str
    name: str
    urn: str
    parent: str | None  # parent URN; None for children of the root stack
    custom: bool  # False for components
    remote: bool  # multi-language components (yaml/v2, pulumi-eks): no children here
    provider: str | None  # provider reference "urn::id"
    inputs: Mapping[str, Any]
    secret_inputs: frozenset[str]  # top-level input keys whose value is (or holds) a secret
    options: RecordedOptions


@dataclass(frozen=True)
class ProgramRun:
    stack: str
    resources: tuple[RegisteredResource, ...]
    outputs: Mapping[str, Any]
    secret_outputs: frozenset[str]
    warnings: tuple[str, ...]
    error: BaseException | None = None
    absent_secrets: tuple[str, ...] = ()  # required secrets the run filled with placeholders

    def of_type(self, type_: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> RegisteredResource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {names}")
        return found[0]

    def by_urn(self, urn: str) -> RegisteredResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise LookupError(urn)

    def check(self) -> ProgramRun:
        """Raise the program's error, if any; returns self for chaining."""
        if self.error is not None:
            raise self.error
        return self


# --- config, the way the CLI would pass it -------------------------------------------------


def encode_config_value(value: Any) -> str:
    """The CLI passes strings as-is and everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def offline_source(
    path: Path, stack: str | None = None, secrets: Mapping[str, str] | None = None,
    fill_secrets: bool = True,
) -> StackSource:
    """The stack file as an offline run hands it to the program: `secrets` (short or fully
    qualified keys) count as set, and are no placeholders; with `fill_secrets`, the secrets
    the stack requires (as the program will read it) but lacks are placeholders. Raises
    StackFileError for a file that is not YAML."""
    source = source_from_stack_file(path, stack, fill_secrets=False)
    given = {key.removeprefix(f"{PROJECT}:") for key in secrets or {}}
    source = replace(source, secret_keys=source.secret_keys | given)
    if not fill_secrets:
        return source
    return with_placeholders(source, required_secret_keys(as_the_program_reads(source)))


def as_the_program_reads(source: StackSource) -> StackSource:
    """`source` with its values as the program reads them from an offline run's config (the
    CLI's encoding, then the program's decoding; keys sorted, objects' too), so what the
    run validates is what the program validates, parsed once in parsing_once."""
    return replace(source, values={key: read_config_value(key, encode_config_value(value))
                                   for key, value in sorted(source.values.items())})


def absent_secrets(source: StackSource) -> tuple[str, ...]:
    """validate_stack's word on each placeholder: the `pulumi config set --secret` that
    `pulumi up` will need. None for a stack it refuses: the run reports that instead."""
    if not source.placeholder_keys:
        return ()
    try:
        return validate_stack(as_the_program_reads(source)).absent_secrets
    except StackConfigError:
        return ()


def stack_config(
    path: Path, secrets: Mapping[str, str] | None = None, fill_secrets: bool = True,
) -> tuple[dict[str, str], list[str]]:
    """(config, secret keys) for `set_all_config`, from a stack file plus secret values.

    `secure:` entries, which need the Pulumi CLI to decrypt, and (with `fill_secrets`) the
    secrets the stack requires but lacks get a placeholder (`offline_source` decides which),
    so offline renders work without credentials.
    """
    return _config_of(offline_source(path, None, secrets, fill_secrets), secrets)


def _config_of(source: StackSource,
               secrets: Mapping[str, str] | None) -> tuple[dict[str, str], list[str]]:
    given = {key.removeprefix(f"{PROJECT}:"): value for key, value in (secrets or {}).items()}
    secret_values = {key: given.get(key, SECRET_PLACEHOLDER) for key in source.secret_keys}
    values = {**source.values, **secret_values}
    return ({f"{PROJECT}:{key}": encode_config_value(value)
             for key, value in sorted(values.items())},
            sorted(f"{PROJECT}:{key}" for key in secret_values))


# --- the mock engine ----------------------------------------------------------------------


def _fake_outputs(args: MockResourceArgs) -> dict[str, Any]:
    """Outputs the real provider would add, so `apply` callbacks see realistic values: each
    backend's spec fakes its own cloud's resources (infra/clusters/<backend>_spec.py)."""
    state = dict(args.inputs)
    for spec in cluster_specs():
        faked = spec.fake_outputs(args.typ, args.name, state)
        if faked is not None:
            return faked
    if args.typ == "random:index/randomPassword:RandomPassword":
        state["result"] = f"{RANDOM_PLACEHOLDER}-{args.name}"  # secret, as the provider's is
    elif args.typ.startswith("kubernetes:helm.sh/"):
        state["status"] = {"status": "deployed", "version": state.get("version")}
    return state


def _fake_call(args: MockCallArgs) -> dict[str, Any]:
    """Results of the invokes the program makes (reads of the machine or the cloud)."""
    for spec in cluster_specs():
        result = spec.fake_call(args.token, args.args)
        if result is not None:
            return result
    return {}


class OfflineMocks(Mocks):
    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", _fake_outputs(args)

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return _fake_call(args), []


def _plain(value: Any, path: str, secrets: set[str]) -> Any:
    """Protobuf JSON → plain values: secrets unwrapped (their paths noted), resources → URN."""
    if isinstance(value, dict):
        signature = value.get(SIG_KEY)
        if signature == SECRET_SIG:
            secrets.add(path)
            return _plain(value.get("value"), path, secrets)
        if signature == RESOURCE_SIG:
            return value.get("urn")
        return {key: _plain(item, f"{path}.{key}" if path else key, secrets)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, f"{path}[{i}]", secrets) for i, item in enumerate(value)]
    return value


def _without_resource_refs(value: Any) -> Any:
    """Resource references → their URN (protobuf JSON form, secrets kept)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == RESOURCE_SIG:
            return value.get("urn")
        return {key: _without_resource_refs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_resource_refs(item) for item in value]
    return value


class RecordingMonitor(MockMonitor):
    """The mock monitor, keeping every registration's inputs, parent and options.

    It hands the mocks resource references as URNs: the stock monitor rebuilds them as Python
    resources on its executor thread, whose outputs then wait on a loop that never runs (an
    intermittent hang with pulumi-eks/pulumi-aws inputs such as `cluster=` or `node_role=`).
    """

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.records: list[RegisteredResource] = []

    def _record(self, request: Any, raw: dict[str, Any], urn: str, custom: bool,
                remote: bool) -> None:
        secrets: set[str] = set()
        inputs = _plain(raw, "", secrets)
        options = RecordedOptions()
        if hasattr(request, "ignoreChanges"):
            timeouts = request.customTimeouts
            options = RecordedOptions(
                depends_on=tuple(request.dependencies),
                ignore_changes=tuple(request.ignoreChanges),
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                replace_on_changes=tuple(request.replaceOnChanges),
                custom_timeouts={k: v for k, v in (("create", timeouts.create),
                                                   ("update", timeouts.update),
                                                   ("delete", timeouts.delete)) if v},
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                providers=dict(sorted(request.providers.items())),
            )
        self.records.append(RegisteredResource(
            type=request.type, name=request.name, urn=urn, parent=request.parent or None,
            custom=custom, remote=remote, provider=request.provider or None, inputs=inputs,
            secret_inputs=frozenset(path.split(".")[0].split("[")[0] for path in secrets),
            options=options,
        ))

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        raw = _without_resource_refs(json_format.MessageToDict(request.object))
        inputs = deserialize_properties(json_format.ParseDict(raw, struct_pb2.Struct()))
        args = MockResourceArgs(typ=request.type, name=request.name, inputs=inputs,
                                provider=request.provider, resource_id=request.importId,
                                custom=request.custom or False)
        id_, state = self.mocks.new_resource(args)
        state_proto = serialize_properties(state)
        self.resources[urn] = registration(urn, id_ or "", state)
        self._record(request, raw, urn, bool(request.custom), bool(request.remote))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=state_proto)

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        raw = json_format.MessageToDict(request.properties)
        self._record(request, raw, response.urn, True, False)
        return response


# --- running the program ------------------------------------------------------------------


class _Collector(logging.Handler):
    """Keeps what the program logs at warning level and above (pulumi.log.warn)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _run_main() -> None:
    runpy.run_path(str(PROGRAM), run_name="__main__")


async def _resolve(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for key in sorted(outputs):
        output = pulumi.Output.from_input(outputs[key])
        values[key] = await output.future()
        if await output.is_secret():
            secret.add(key)
    return values, secret


def run_program(
    stack: str, config: Mapping[str, str], secret_keys: Sequence[str] = (),
) -> ProgramRun:
    """Run the program (infra/__main__.py) for `stack` under mocks; never raises for the
    program's own errors, which land in `ProgramRun.error`."""
    reset_root_stack()  # no state leaks between runs
    # Pulumi's runtime schedules on the thread's current event loop; an earlier asyncio.run()
    # in this process (a CLI command, a load test) leaves none set, so each run gets its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))
    mocks = OfflineMocks()
    monitor = RecordingMonitor(mocks)
    logger = logging.getLogger(f"servestack.offline.{stack}")
    collector = _Collector()
    logger.addHandler(collector)
    logger.propagate = False
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False,
                             monitor=monitor, logger=logger)
    captured: dict[str, Any] = {}

    def body() -> Any:
        _run_main()
        outputs = root_stack_outputs()

        async def collect() -> None:
            captured["values"], captured["secret"] = await _resolve(outputs)

        return collect()

    error: BaseException | None = None
    try:
        pulumi.runtime.test(body)()  # type: ignore[no-untyped-call]
    except Exception as exc:
        error = exc
    finally:
        logger.removeHandler(collector)
        asyncio.set_event_loop(None)
        loop.close()
    return ProgramRun(
        stack=stack,
        resources=tuple(sorted(monitor.records, key=lambda r: r.urn)),
        outputs=captured.get("values", {}),
        secret_outputs=frozenset(captured.get("secret", set())),
        warnings=tuple(collector.messages),
        error=error,
    )


def run_stack(
    stack: str,
    stacks_dir: Path = STACKS_DIR,
    secrets: Mapping[str, str] | None = None,
    fill_secrets: bool = True,
) -> ProgramRun:
    """Run the program for `stacks/Pulumi.<stack>.yaml` under mocks."""
    return run_stack_file(stack_file(stack, stacks_dir), stack, secrets, fill_secrets)


def run_stack_file(
    path: Path,
    stack: str | None = None,
    secrets: Mapping[str, str] | None = None,
    fill_secrets: bool = True,
) -> ProgramRun:
    """Run the program for any stack file (e.g. a test fixture); the stack name defaults to
    the file's (`stack_name`). A file that is not YAML raises StackFileError: the Pulumi CLI
    would refuse it before the program starts."""
    name = stack or stack_name(path)
    with parsing_once():  # the placeholders, the program and the absent secrets: one parse
        source = offline_source(path, name, secrets, fill_secrets)
        config, secret_keys = _config_of(source, secrets)
        run = run_program(name, config, secret_keys)
        return replace(run, absent_secrets=absent_secrets(source))
