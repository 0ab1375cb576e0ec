"""Which stack fields name a secret config key, and what that secret holds.

Declared once, on the field: `Annotated[str, NamesSecret(meaning)]`. One function reads the
keys they name, from a parsed section (what the section's `required_secrets` picks from) or
from the raw values before parsing (validate_stack must take the secrets out of the values
first: they are config keys of their own, never StackConfig fields).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class NamesSecret:
    """Field metadata: the field's value is the config key of a secret holding `meaning`."""

    meaning: str


@functools.cache
def secret_key_fields(schema: type[BaseModel]) -> tuple[tuple[tuple[str, ...], Any, str], ...]:
    """(path, default, meaning) of each field under `schema` that names a secret, in field
    order; a field is found through sections that are one model each (not a union)."""
    found: list[tuple[tuple[str, ...], Any, str]] = []
    for name, field in schema.model_fields.items():
        marks = [mark for mark in field.metadata if isinstance(mark, NamesSecret)]
        if marks:
            found.append(((name,), field.get_default(call_default_factory=True),
                          marks[0].meaning))
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found.extend(((name, *path), default, meaning)
                         for path, default, meaning in secret_key_fields(field.annotation))
    return tuple(found)


def named_secrets(schema: type[BaseModel],
                  section: BaseModel | Mapping[str, Any]) -> dict[str, str]:
    """Secret config key → what it holds, for every field under `schema` that names one, read
    from `section`: a parsed `schema`, or its raw values, where a missing or non-string value
    stands for the field's default."""
    found: dict[str, str] = {}
    for path, default, meaning in secret_key_fields(schema):
        value: Any = section
        for part in path:
            if isinstance(value, BaseModel):
                value = getattr(value, part)
            else:
                value = value.get(part) if isinstance(value, Mapping) else None
        key = value if isinstance(value, str) else default
        if isinstance(key, str):
            found[key] = meaning
    return found
