"""Enforcement levels per environment, and the pack-config overrides on top."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel

from infra.environment import environment_for
from policies.enforcement import (
    LEVELS,
    PolicyConfigError,
    levels_for,
    parse_policy_config,
    read_policy_config,
)
from policies.rules import RULES

M, A, D = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY, EnforcementLevel.DISABLED


def test_every_rule_has_a_level_in_every_environment_and_nothing_else_does() -> None:
    assert sorted(LEVELS) == sorted(rule.name for rule in RULES)
    for by_env in LEVELS.values():
        assert set(by_env) == {"local", "dev", "staging", "prod"}


def test_prod_is_mandatory_everywhere() -> None:
    assert set(levels_for("prod").values()) == {M}


def test_dev_relaxes_availability_to_advisory_and_local_disables_it() -> None:
    assert levels_for("dev")["gcs-fault-tolerance"] == A
    assert levels_for("local")["gcs-fault-tolerance"] == D
    assert levels_for("dev")["images-pinned"] == M


@pytest.mark.parametrize(
    ("stack", "environment"),
    [("prod", "prod"), ("acme/servestack/dev", "dev"), ("acme/local", "local"),
     ("staging", "staging"), ("eu-canary", "prod"), ("", "prod"), (None, "prod")],
)
def test_stacks_map_to_environments_and_unknown_ones_to_the_strictest(
    stack: str | None, environment: str
) -> None:
    assert environment_for(stack) == environment


def test_pack_config_overrides_single_policies_after_all() -> None:
    overrides = parse_policy_config(
        {"all": "advisory", "images-pinned": {"enforcementLevel": "mandatory"}}
    )
    levels = levels_for("prod", overrides)
    assert levels["images-pinned"] == M
    assert levels["pods-hardened"] == A


def test_pack_config_rejects_unknown_policies_and_levels(tmp_path: Path) -> None:
    with pytest.raises(PolicyConfigError, match="unknown policy 'image-pinned'"):
        parse_policy_config({"image-pinned": "advisory"})
    with pytest.raises(PolicyConfigError, match="'loud' is not an enforcement level"):
        parse_policy_config({"images-pinned": "loud"})
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"pods-hardened": "disabled"}))
    assert read_policy_config(path) == {"pods-hardened": D}
    path.write_text("[1, 2]")
    with pytest.raises(PolicyConfigError, match="must be a JSON object"):
        read_policy_config(path)
