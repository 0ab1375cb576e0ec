"""The one function that decides whether a stack is valid: `validate_stack`.

`pulumi up` (infra.program), the policy pack and every offline command (plan, render, check,
diff, serve) call it, so none of them can accept a stack another refuses. Its input is a
`StackSource`, the stack's `servestack:` keys wherever they were read (Pulumi config or a
stack file); its output the validated config, the capacity plan and the Serve config, or one
StackConfigError listing every (field path, message) problem it found.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from infra.autoscaler_fit import autoscaler_placement_problems
from infra.capacity import CapacityError, CapacityPlan, plan_capacity
from infra.clusters.existing_spec import KUBECONFIG_MEANING
from infra.config import (
    PROJECT,
    StackConfig,
    StackConfigError,
    backend_problems,
    parse_stack_config,
)
from infra.config.image import fold_flat_image_keys
from infra.config.secret_keys import named_secrets
from infra.contradictions import contradiction_problems
from infra.environment import GUARDED, environment_for
from infra.names import KUBECONFIG_KEY
from infra.serve_config import ServeConfigError, serve_config_for
from infra.upgrade_plan import UpgradeFitError, front_door_warnings, upgrade_plan


@dataclass(frozen=True)
class StackSource:
    """A stack's `servestack:` keys as found, before validation; secret values never enter."""

    name: str
    values: Mapping[str, Any]  # plain-text keys (prefix stripped) → their values
    secret_keys: frozenset[str]  # keys set as secrets (prefix stripped)
    placeholder_keys: frozenset[str] = frozenset()
    """Secret keys the stack lacks, counted among `secret_keys` only because an offline run
    fills them with placeholders: validate_stack names each as absent instead of refusing."""


@dataclass(frozen=True)
class ValidStack:
    """Everything `pulumi up` builds from: nothing is built from a stack that lacks one."""

    stack: StackConfig
    plan: CapacityPlan
    serve_config: dict[str, Any]
    warnings: tuple[str, ...]  # every command prints these; the program logs them
    absent_secrets: tuple[str, ...] = ()  # placeholder_keys: what `pulumi up` will ask for


def secret_command(key: str) -> str:
    return f"`pulumi config set --secret {PROJECT}:{key} <value>`"


def _secret_keys(values: Mapping[str, Any]) -> dict[str, str]:
    """Every key servestack may read as a secret → what it holds, found in the raw values
    because they must leave them before parsing (they are never StackConfig fields): the
    keys the schema's NamesSecret fields name (infra.config.secret_keys, the reader the
    sections' `required_secrets` use too, which pick the ones a stack needs) and the
    existing cluster's kubeconfig."""
    return {KUBECONFIG_KEY: KUBECONFIG_MEANING, **named_secrets(StackConfig, values)}


def plain_secret_message(key: str, meaning: str) -> str:
    return (f"{meaning} is stored in plain text (the stack file, the Pulumi state, every "
            f"render); re-set it with {secret_command(key)}")


def validate_stack(source: StackSource) -> ValidStack:
    """Validate config, backend rules, secrets, capacity plan, autoscaler placement, upgrade
    steps and Serve config together.

    Raises StackConfigError with every problem found; a plain-text secret is one of them in
    staging and prod, and a warning elsewhere.
    """
    _refuse_misplaced_keys(source)
    secrets = _secret_keys(source.values)

    problems: list[tuple[str, str]] = []
    stack: StackConfig | None = None
    planned: StackConfig | None = None  # parsed; `stack` too once the backend's rules hold
    try:
        planned = _parsed(source.name, _stack_fields(source, secrets))
    except StackConfigError as error:
        problems += error.problems
    else:  # the backend's pool rules are reported beside the plan's, which is still checked
        problems += backend_problems(planned) + contradiction_problems(planned)
        stack = None if problems else planned

    secret_problems, warnings, absent = _secret_findings(source, secrets, planned)
    problems += secret_problems
    plan: CapacityPlan | None = None
    if planned is not None:
        try:
            plan = plan_capacity(planned)
        except CapacityError as error:
            problems += error.problems
        else:  # a plan that fits: can Ray's autoscaler place every deployment on its groups?
            problems += autoscaler_placement_problems(planned, plan)
            try:  # and can the pools hold the upgrade's steps?
                upgrade_plan(planned, plan)
            except UpgradeFitError as error:
                problems += error.problems

    if problems or stack is None or plan is None:
        raise StackConfigError(source.name, problems)
    try:
        serve_config = serve_config_for(stack)
    except ServeConfigError as error:
        raise StackConfigError(source.name, [("apps", str(error))]) from None
    return ValidStack(stack, plan, serve_config,
                      (*plan.warnings, *warnings, *front_door_warnings(stack)), tuple(absent))


def required_secret_keys(source: StackSource) -> frozenset[str]:
    """The secret keys the program will ask for (`StackConfig.required_secrets`), from the
    stack as validate_stack parses it; none for a stack it refuses at parsing, which
    validate_stack reports."""
    try:
        _refuse_misplaced_keys(source)
        stack = _parsed(source.name, _stack_fields(source, _secret_keys(source.values)))
        return frozenset(stack.required_secrets())
    except ValueError:
        return frozenset()


def _stack_fields(source: StackSource, secrets: Mapping[str, str]) -> dict[str, Any]:
    """What StackConfig parses: the values without the secrets, `image.<field>` keys folded."""
    raw = fold_flat_image_keys(
        {key: value for key, value in source.values.items() if key not in secrets})
    # A secret key servestack does not read: StackConfig reports it as an unknown field.
    raw.update(dict.fromkeys(source.secret_keys - set(secrets), "[secret]"))
    return raw


# --- one parse per stack in a scope ---------------------------------------------------------

_PARSES: ContextVar[dict[Hashable, StackConfig | list[tuple[str, str]]] | None] = ContextVar(
    "stack_parses", default=None)


@contextmanager
def parsing_once() -> Iterator[None]:
    """Inside, the same fields of a stack are parsed into a StackConfig once, however often
    they are validated: an offline run reads its stack for the placeholders, in the program
    and for the absent secrets' report. Outside, every validation parses afresh (a registered
    app, a changed catalog, is seen at once)."""
    if _PARSES.get() is not None:
        yield
        return
    token = _PARSES.set({})
    try:
        yield
    finally:
        _PARSES.reset(token)


def _parsed(name: str, raw: dict[str, Any]) -> StackConfig:
    """`parse_stack_config(name, raw, backend_rules=False)`, remembered inside parsing_once."""
    parses = _PARSES.get()
    try:
        key = (name, _frozen(raw)) if parses is not None else None
    except TypeError:  # a value no stack file holds: parse it every time
        key = None
    if parses is None or key is None:
        return parse_stack_config(name, raw, backend_rules=False)
    if key not in parses:
        try:
            parses[key] = parse_stack_config(name, raw, backend_rules=False)
        except StackConfigError as error:
            parses[key] = list(error.problems)
    found = parses[key]
    if isinstance(found, list):
        raise StackConfigError(name, list(found))
    return found


def _frozen(value: Any) -> Hashable:
    """An exact, hashable copy of a stack's values: key order and each value's type count
    (`1`, `1.0`, `True` and `"1"` parse differently)."""
    if isinstance(value, Mapping):
        return ("mapping", tuple((_frozen(key), _frozen(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_frozen(item) for item in value))
    if value is None or isinstance(value, str | int | float):
        return (type(value).__name__, value)
    raise TypeError(f"not a stack value: {type(value).__name__}")


def _refuse_misplaced_keys(source: StackSource) -> None:
    """Keys that can never be read as written: a config field set as a secret, `stack`."""
    problems = [(key, "set as a secret, but servestack reads it as plain configuration; set "
                      f"it with `pulumi config set {PROJECT}:{key}` (no --secret)")
                for key in sorted(source.secret_keys & set(StackConfig.model_fields))]
    if "stack" in source.values:
        problems.append(("stack", "unknown field 'stack'; a stack is named by its file, "
                                  "Pulumi.<stack>.yaml"))
    if problems:
        raise StackConfigError(source.name, problems)


def _secret_findings(
    source: StackSource, secrets: Mapping[str, str], stack: StackConfig | None,
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(problems, warnings, absent): secrets in plain text (errors in staging and prod), and
    the secrets the stack requires but nobody set (errors, unless an offline run fills them)."""
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    absent: list[str] = []
    guarded = environment_for(source.name) in GUARDED
    for key, meaning in secrets.items():
        if key in source.values:
            message = plain_secret_message(key, meaning)
            if guarded:
                problems.append((key, message))
            else:
                warnings.append(f"{PROJECT}:{key}: {message}")
    for key, meaning in (stack.required_secrets() if stack is not None else {}).items():
        if key in source.placeholder_keys:
            absent.append(f"{PROJECT}:{key} is not set ({meaning}); offline runs use a "
                          f"placeholder, `pulumi up` stops without it: {secret_command(key)}")
        elif key not in source.values and key not in source.secret_keys:
            problems.append((key, f"missing: {meaning}; set it with {secret_command(key)}"))
    return problems, warnings, absent
