"""Builds and serves the CrossGuard pack; never import this module (it blocks serving gRPC).

`pulumi preview --policy-pack policies` runs it with PULUMI_STACK set, which picks the
stack's environment levels (policies.enforcement); `--policy-pack-config` overrides them.
"""

import os

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.environment import environment_for
from policies.enforcement import levels_for
from policies.rules import build_policies
from policies.stack_context import stack_config_from_pulumi

PolicyPack(
    name="servestack",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(
        levels_for(environment_for(os.environ.get("PULUMI_STACK"))), stack_config_from_pulumi
    ),
)
