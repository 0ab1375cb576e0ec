"""The one function that decides whether a stack is valid: `validate_stack`.

`pulumi up` (infra.program), the policy pack and every offline command (plan, render, check,
diff, serve) call it, so none of them can accept a stack another refuses. Its input is a
`StackSource`, the stack's `servestack:` keys wherever they were read (Pulumi config or a
stack file); its output the validated config, the capacity plan and the Serve config, or one
StackConfigError listing every (field path, message) problem it found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.autoscaler_fit import autoscaler_placement_problems
from infra.capacity import CapacityError, CapacityPlan, plan_capacity
from infra.clusters.existing_spec import KUBECONFIG_MEANING
from infra.config import (
    PROJECT,
    GcsFaultTolerance,
    StackConfig,
    StackConfigError,
    backend_problems,
    parse_stack_config,
)
from infra.config.image import fold_flat_image_keys
from infra.config.model_sources import MLFLOW_TOKEN_MEANING
from infra.config.rayservice import REDIS_PASSWORD_MEANING
from infra.contradictions import contradiction_problems
from infra.environment import GUARDED, environment_for
from infra.names import KUBECONFIG_KEY
from infra.serve_config import ServeConfigError, serve_config_for
from infra.upgrade_plan import UpgradeFitError, front_door_warnings, upgrade_plan

_DEFAULT_PASSWORD_KEY = str(GcsFaultTolerance.model_fields["password_secret_key"].default)


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
    because they must leave them before parsing (they are never StackConfig fields); which
    of them a stack needs is `StackConfig.required_secrets`."""
    rayservice = values.get("rayservice")
    ft = rayservice.get("gcs_fault_tolerance") if isinstance(rayservice, Mapping) else None
    key = ft.get("password_secret_key") if isinstance(ft, Mapping) else None
    password_key = key if isinstance(key, str) else _DEFAULT_PASSWORD_KEY
    found = {KUBECONFIG_KEY: KUBECONFIG_MEANING, password_key: REDIS_PASSWORD_MEANING}
    sources = values.get("model_sources")
    token_key = sources.get("mlflow_token_secret_key") if isinstance(sources, Mapping) else None
    if isinstance(token_key, str):
        found[token_key] = MLFLOW_TOKEN_MEANING
    return found


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
    raw = fold_flat_image_keys(
        {key: value for key, value in source.values.items() if key not in secrets})
    # A secret key servestack does not read: StackConfig reports it as an unknown field.
    raw.update(dict.fromkeys(source.secret_keys - set(secrets), "[secret]"))

    problems: list[tuple[str, str]] = []
    stack: StackConfig | None = None
    planned: StackConfig | None = None  # parsed; `stack` too once the backend's rules hold
    try:
        planned = parse_stack_config(source.name, raw, backend_rules=False)
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
