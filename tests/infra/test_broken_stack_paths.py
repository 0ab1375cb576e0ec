"""Every path a broken fixture's error reports leads to a key the user wrote in that file.

Whoever finds the problem (pydantic, a model validator, the backend's pool rules, the
capacity plan, the autoscaler check, the secrets), the path must be followable in the
stack file: `pools[gpu-l4].taints[0].effect`, never `pools.1.taints.0.effect`,
`cluster.eks.vpc` or `<root>`. A key that is required but missing may be the last step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from apps.field_path import path_from_loc
from infra.config import StackConfigError
from infra.stack_file import StackFileError, source_from_stack_file
from infra.validation import validate_stack

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BROKEN = sorted(FIXTURES.glob("broken-*.yaml"))
_STEP = re.compile(r"(?P<key>[^.\[\]]+)(?P<items>(?:\[[^\]]+\])*)")
_ITEM = re.compile(r"\[([^\]]+)\]")
_MISSING = ("Field required", "missing:")
_NEEDED = " needs "  # a backend's rule on a key a pool lacks: "EKS needs an instance type"


def _items(node: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(node, Sequence) or isinstance(node, str):
            raise LookupError(f"[{key}] of a non-list")
        if key.isdigit() and int(key) < len(node):
            node = node[int(key)]
            continue
        named = [entry for entry in node if isinstance(entry, Mapping) and entry.get("name") == key]
        if not named:
            raise LookupError(f"no item named {key!r}")
        node = named[0]
    return node


def follow(values: Mapping[str, Any], path: str) -> tuple[bool, bool]:
    """(the path's key exists, its parent exists) in the stack file's values."""
    steps = path.split(".")
    node: Any = values
    for index, step in enumerate(steps):
        match = _STEP.fullmatch(step)
        assert match, f"{path!r}: step {step!r} is not `key` or `key[item]`"
        if not isinstance(node, Mapping) or match["key"] not in node:
            last = index == len(steps) - 1 and not match["items"]
            return False, last
        try:
            node = _items(node[match["key"]], _ITEM.findall(match["items"]))
        except LookupError:
            return False, False
    return True, True


def reported(fixture: Path) -> tuple[Mapping[str, Any], list[tuple[str, str]]]:
    source = source_from_stack_file(fixture)
    try:
        validate_stack(source)
    except StackConfigError as error:
        return source.values, error.problems
    raise AssertionError(f"{fixture.name} was accepted")


def _config_fixtures() -> list[Path]:
    """The fixtures that are YAML: the others report `file:line:column` instead."""
    found = []
    for fixture in BROKEN:
        try:
            source_from_stack_file(fixture)
        except StackFileError:
            continue
        found.append(fixture)
    return found


CONFIG_FIXTURES = _config_fixtures()


@pytest.mark.parametrize("fixture", CONFIG_FIXTURES, ids=[p.stem for p in CONFIG_FIXTURES])
def test_every_reported_path_leads_to_a_key_in_the_file(fixture: Path) -> None:
    values, problems = reported(fixture)
    assert problems
    lost = []
    for path, message in problems:
        exists, parent_exists = follow(values, path)
        missing_key = parent_exists and (message.startswith(_MISSING) or _NEEDED in message)
        if message.startswith("missing:"):  # a secret: always a top-level key
            missing_key = missing_key and "." not in path and "[" not in path
        if not (exists or missing_key):
            lost.append((path, message))
    assert lost == []


def test_the_follower_reads_names_indexes_and_missing_keys() -> None:
    values = {"pools": [{"name": "gpu-l4", "taints": [{"key": "a"}]}], "apps": {"x": None}}
    assert follow(values, "pools[gpu-l4].taints[0].key") == (True, True)
    assert follow(values, "pools[gpu-l4].taints[0].effect") == (False, True)
    assert follow(values, "pools[cpu].taints") == (False, False)
    assert follow(values, "pools.1.taints") == (False, False)
    assert follow(values, "apps.x") == (True, True)


@pytest.mark.parametrize(("loc", "raw", "path"), [
    (("pools", 1, "taints", 0, "effect"),
     {"pools": [{"name": "cpu"}, {"name": "gpu-l4", "taints": [{"effect": "X"}]}]},
     "pools[gpu-l4].taints[0].effect"),
    (("cluster", "eks", "vpc"), {"cluster": {"backend": "eks", "vpc": {}}}, "cluster.vpc"),
    (("cluster", "gke", "project"), {"cluster": {"backend": "gke"}}, "cluster.project"),
    (("pools", 0), {"pools": [1]}, "pools[0]"),
    (("apps", "x", "[key]"), {"apps": {"x": 1}}, "apps.x"),
    (("a", "b"), None, "a.b"),
    ((), {}, ""),
])
def test_pydantic_locations_are_spelled_as_the_user_wrote_them(
    loc: tuple[str | int, ...], raw: Any, path: str,
) -> None:
    assert path_from_loc(loc, raw) == path
