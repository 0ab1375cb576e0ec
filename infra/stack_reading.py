"""The stack as the program reads it: Pulumi config → `StackConfig`, plus its secrets.

Its own module so that the policy pack, which runs in a process Pulumi starts with the same
config, reads the stack exactly as the program does without importing the program.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config

from infra.config import (
    PROJECT,
    ExistingCluster,
    GcsFaultTolerance,
    StackConfig,
    StackConfigError,
    parse_stack_config,
)
from infra.names import KUBECONFIG_KEY

_PREFIX = f"{PROJECT}:"
_DEFAULT_PASSWORD_KEY = str(GcsFaultTolerance.model_fields["password_secret_key"].default)


def configured_keys() -> dict[str, bool]:
    """Every `servestack:` key the engine passed (prefix stripped) → whether it is secret."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env())
    return {
        key.removeprefix(_PREFIX): runtime_config.is_config_secret(key) or key in secret
        for key in sorted(values) if key.startswith(_PREFIX)
    }


def _password_key(raw: dict[str, Any]) -> str:
    rayservice = raw.get("rayservice")
    ft = rayservice.get("gcs_fault_tolerance") if isinstance(rayservice, dict) else None
    key = ft.get("password_secret_key") if isinstance(ft, dict) else None
    return key if isinstance(key, str) else _DEFAULT_PASSWORD_KEY


def read_stack_config(stack_name: str, config: pulumi.Config) -> StackConfig:
    """Every StackConfig field from Pulumi config, plus any unknown key so it is reported."""
    raw: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, field in StackConfig.model_fields.items():
        if key == "stack":
            continue
        if field.annotation is str:
            value: Any = config.get(key)
        else:
            try:
                value = config.get_object(key)
            except (pulumi.ConfigTypeError, json.JSONDecodeError):
                problems.append((key, f"expected a YAML mapping or list, got {config.get(key)!r}"))
                continue
        if value is not None:
            raw[key] = value
    if problems:
        raise StackConfigError(stack_name, problems)
    secrets = {KUBECONFIG_KEY, _password_key(raw)}
    for key in configured_keys():
        if key not in raw and key not in StackConfig.model_fields and key not in secrets:
            raw[key] = config.get(key)  # StackConfig forbids it, naming the key
    return parse_stack_config(stack_name, raw)


def required_secrets(stack: StackConfig) -> dict[str, str]:
    """Secret config keys this stack needs → what they hold (for the error and the docs)."""
    needed = {}
    cluster = stack.cluster
    if isinstance(cluster, ExistingCluster) and cluster.kubeconfig_from == "secret":
        needed[KUBECONFIG_KEY] = "the kubeconfig of the existing cluster"
    ft = stack.rayservice.gcs_fault_tolerance
    if ft.enabled:
        needed[ft.password_secret_key] = "the password of the GCS fault-tolerance Redis"
    return needed


def check_secrets(stack: StackConfig) -> list[tuple[str, str]]:
    present = configured_keys()
    problems = []
    for key, meaning in required_secrets(stack).items():
        if key not in present:
            problems.append((key, f"missing: {meaning}; set it with "
                                  f"`pulumi config set --secret {_PREFIX}{key} <value>`"))
        elif not present[key]:
            pulumi.log.warn(f"{_PREFIX}{key} is stored in plain text; re-set it with "
                            f"`pulumi config set --secret {_PREFIX}{key} <value>`")
    return problems
