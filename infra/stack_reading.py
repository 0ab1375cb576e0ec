"""The stack as the program reads it: Pulumi config → `StackSource`, for `validate_stack`.

Its own module so that the policy pack, which runs in a process Pulumi starts with the same
config, reads the stack exactly as the program does without importing the program.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config

from infra.config import PROJECT, StackConfig
from infra.validation import StackSource

_PREFIX = f"{PROJECT}:"


def configured_keys() -> dict[str, bool]:
    """Every `servestack:` key the engine passed (prefix stripped) → whether it is secret."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env())
    return {
        key.removeprefix(_PREFIX): runtime_config.is_config_secret(key) or key in secret
        for key in sorted(values) if key.startswith(_PREFIX)
    }


def source_from_pulumi_config(stack_name: str, config: pulumi.Config) -> StackSource:
    """Every plain key with its value (read_config_value), secrets by name."""
    values: dict[str, Any] = {}
    secret_keys = set()
    for key, secret in configured_keys().items():
        if secret:
            secret_keys.add(key)
            continue
        text = config.get(key)
        values[key] = None if text is None else read_config_value(key, text)
    return StackSource(stack_name, values, frozenset(secret_keys))


def read_config_value(key: str, text: str) -> Any:
    """A plain config value as the program reads it: the CLI's JSON decoded for a field not
    typed `str` (`pulumi.Config.get_object`'s decoding).

    A value that is not JSON stays a string, so the field's own validator reports it at its
    path, as it does for the same value in a stack file.
    """
    field = StackConfig.model_fields.get(key)
    if field is None or field.annotation is str:
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # get_object raises ConfigTypeError for either
        return text
