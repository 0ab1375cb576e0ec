"""Builds and serves the CrossGuard pack; never import this module (it blocks serving gRPC).

`pulumi preview --policy-pack policies` runs it with PULUMI_STACK and the stack's config
(PULUMI_CONFIG) set, which pick the stack's environment levels and its budget's own level
(policies.enforcement); `--policy-pack-config` overrides them.
"""

import os

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.environment import environment_for
from policies.enforcement import levels_for, stack_levels
from policies.rules import build_policies
from policies.stack_context import stack_config_from_pulumi

try:
    own_levels = stack_levels(stack_config_from_pulumi())
except Exception:
    own_levels = {}

PolicyPack(
    name="servestack",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(
        levels_for(environment_for(os.environ.get("PULUMI_STACK")), stack=own_levels),
        stack_config_from_pulumi,
    ),
)
