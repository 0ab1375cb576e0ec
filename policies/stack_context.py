"""The stack config as the pack sees it: Pulumi passes the stack's config to the policy process.

Stack rules recompute the capacity plan from the same `StackConfig` the program validated,
rather than trusting an exported copy of it.
"""

from __future__ import annotations

import pulumi

from infra.config import PROJECT, StackConfig, parse_stack_config


def stack_config_from_pulumi() -> StackConfig:
    """Read every StackConfig key from `servestack:` config and validate it once."""
    config = pulumi.Config(PROJECT)
    raw = {}
    for key in StackConfig.model_fields:
        if key == "stack":
            continue
        value = config.get_object(key)
        if value is not None:
            raw[key] = value
    return parse_stack_config(pulumi.get_stack(), raw)
