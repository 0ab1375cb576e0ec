"""docs/policies.md lists every policy with the levels the code enforces."""

from __future__ import annotations

import re

from infra.config import REPO_ROOT
from infra.environment import ENVIRONMENTS
from policies.enforcement import LEVELS
from policies.rules import RULES

DOC = REPO_ROOT / "docs" / "policies.md"


def test_the_policy_table_matches_the_rules_and_their_levels() -> None:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `([a-z0-9-]+)` \| (resource|stack) \| (.+?) \| (.+) \|$", line)
        if match:
            cells = [c.strip() for c in match.group(4).split("|")]
            rows[match.group(1)] = (match.group(3), cells[: len(ENVIRONMENTS)])
    assert sorted(rows) == sorted(rule.name for rule in RULES)
    for rule in RULES:
        description, levels = rows[rule.name]
        assert description == rule.description, rule.name
        assert levels == [LEVELS[rule.name][env].value for env in ENVIRONMENTS], rule.name
