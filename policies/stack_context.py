"""The stack config as the pack sees it: Pulumi passes the stack's config to the policy process.

Stack rules recompute the capacity plan from the same `StackConfig` the program validated,
read the same way the program reads it, rather than trusting an exported copy.
"""

from __future__ import annotations

import pulumi

from infra.config import PROJECT, StackConfig


def stack_config_from_pulumi() -> StackConfig:
    from infra.stack_reading import read_stack_config  # the program's own reader

    return read_stack_config(pulumi.get_stack(), pulumi.Config(PROJECT))
