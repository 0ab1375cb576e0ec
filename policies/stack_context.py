"""The stack config as the pack sees it: Pulumi passes the stack's config to the policy process.

Stack rules recompute the capacity plan from the same `StackConfig` the program validated,
read and validated by the program's own functions, rather than trusting an exported copy.
"""

from __future__ import annotations

import pulumi

from infra.config import PROJECT, StackConfig


def stack_config_from_pulumi() -> StackConfig:
    from infra.stack_reading import source_from_pulumi_config  # the program's own reader
    from infra.validation import validate_stack  # and its one validation

    source = source_from_pulumi_config(pulumi.get_stack(), pulumi.Config(PROJECT))
    return validate_stack(source).stack
