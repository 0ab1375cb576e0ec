"""Field-by-field differences between two documents, with paths a reader can follow.

Lists of named things (containers, worker groups, Serve applications and deployments) are
matched by name, so reordering is no change and a path reads `workerGroupSpecs[cpu].maxReplicas`
rather than an index that shifts when a group is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IDENTITY_KEYS = ("name", "groupName", "alert")  # Prometheus alerting rules are named by `alert`
ABSENT: Any = None


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any

    @property
    def added(self) -> bool:
        return self.old is ABSENT and self.new is not ABSENT

    @property
    def removed(self) -> bool:
        return self.new is ABSENT and self.old is not ABSENT


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _identity(*sides: list[Any]) -> str | None:
    """The key that names every item, uniquely within each side, of lists of mappings."""
    items = [item for side in sides for item in side]
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    for key in IDENTITY_KEYS:
        names = [[i.get(key) for i in side] for side in sides]
        if all(isinstance(n, str) for side in names for n in side) and all(
            len(set(side)) == len(side) for side in names
        ):
            return key
    return None


def field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every leaf that differs; a mapping or list added or removed whole is one change."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[FieldChange] = []
        for key in sorted(set(old) | set(new), key=str):
            changes += field_changes(old.get(key, ABSENT), new.get(key, ABSENT),
                                     _join(path, str(key)))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        key = _identity(old, new)
        if key is not None:
            before = {item[key]: item for item in old}
            after = {item[key]: item for item in new}
            changes = []
            for name in sorted(set(before) | set(after)):
                changes += field_changes(before.get(name, ABSENT), after.get(name, ABSENT),
                                         f"{path}[{name}]")
            return changes
        if len(old) == len(new):
            changes = []
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                changes += field_changes(a, b, f"{path}[{index}]")
            return changes
    if old == new and type(old) is type(new):
        return []
    if old == new and isinstance(old, int | float) and isinstance(new, int | float):
        return []  # 1 and 1.0 are the same quantity on the wire
    return [FieldChange(path, old, new)]
