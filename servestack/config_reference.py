"""Every `servestack:` config key and every app's live settings, read off the pydantic models.

The tables (config keys in README.md, app settings in docs/apps.md) are generated from the
fields' own descriptions, never written by hand, so they cannot drift from the models:
`python -m servestack.config_reference --write <document>` rewrites each table between its
markers, and tests fail when a document and the models disagree or a field has no description.
"""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ByteSize
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from apps.catalog import CATALOG
from apps.spec import ApplicationSpec, ReplicaUserConfig
from infra.config import PROJECT, GcsFaultTolerance, StackConfig
from infra.names import KUBECONFIG_KEY
from infra.quantities import memory_quantity


@dataclass(frozen=True)
class ConfigKey:
    key: str  # path under servestack:, e.g. rayservice.head.cpu
    type: str
    default: str
    meaning: str


def _value(value: Any) -> str:
    if isinstance(value, ByteSize):
        return memory_quantity(int(value))
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"), sort_keys=True)
    if isinstance(value, tuple):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    return json.dumps(value, sort_keys=True)


def _default(field: FieldInfo, inherited: Any = PydanticUndefined) -> str:
    if inherited is not PydanticUndefined:
        return f"`{_value(inherited)}`"
    if field.default_factory is not None:
        return f"`{_value(field.default_factory())}`"  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "required"
    return f"`{_value(field.default)}`"


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (directly, in a tuple, or in a union)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return models_in(get_args(annotation)[0])
    if origin in (Union, types.UnionType, tuple):
        return [m for arg in get_args(annotation) for m in models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _type(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in present):
            return "mapping"
        text = " or ".join(_type(a) for a in present)
        return f"{text} (optional)" if len(present) < len(args) else text
    if origin is tuple:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return "mapping"
    if annotation is ByteSize:
        return "size"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _meaning(field: FieldInfo) -> str:
    """The field's own description on one line; empty when it has none (a test refuses that)."""
    return " ".join((field.description or "").split())


def user_models() -> list[type[BaseModel]]:
    """Every model a user writes values for: the stack file, the spec types and each shipped
    app's live settings, with every model their fields hold."""
    settings = [type(dep.user_config) for app in CATALOG.values() for dep in app.deployments
                if dep.user_config is not None]
    found: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [StackConfig, ApplicationSpec, ReplicaUserConfig, *settings]
    while todo:
        model = todo.pop(0)
        if model not in found:
            found.append(model)
            todo.extend(m for f in model.model_fields.values() for m in models_in(f.annotation))
    return found


def undescribed_fields() -> list[str]:
    """`Model.field` of every field of `user_models()` without a description."""
    return [f"{model.__name__}.{name}" for model in user_models()
            for name, field in model.model_fields.items() if not _meaning(field)]


def _walk(model: type[BaseModel], prefix: str, instance: Any = None) -> Iterator[ConfigKey]:
    for name, field in model.model_fields.items():
        if field.annotation is type(None):
            continue  # a removed key, kept only to refuse it with the fix
        path = f"{prefix}{name}"
        inherited = getattr(instance, name) if instance is not None else PydanticUndefined
        nested = models_in(field.annotation)
        child_default = inherited if inherited is not PydanticUndefined else field.default
        shown = _default(field, inherited)
        if nested and isinstance(child_default, BaseModel):
            shown = "see below"  # each nested key lists its own default
        yield ConfigKey(path, _type(field.annotation), shown, _meaning(field))
        many = get_origin(field.annotation) is tuple
        for sub in nested:
            instance_default = child_default if isinstance(child_default, sub) else None
            yield from _walk(sub, f"{path}[]." if many else f"{path}.", instance_default)


def _backends_by_key() -> dict[str, list[str]]:
    """cluster.* key → the backends that have it (the cluster union's variants)."""
    found: dict[str, list[str]] = {}
    for variant in models_in(StackConfig.model_fields["cluster"].annotation):
        backend = str(get_args(variant.model_fields["backend"].annotation)[0])
        for row in _walk(variant, "cluster."):
            found.setdefault(row.key, []).append(backend)
    return found


def config_keys() -> list[ConfigKey]:
    """One row per key path; cluster keys say which backends use them."""
    backends = _backends_by_key()
    every = backends["cluster.backend"]
    rows: dict[str, ConfigKey] = {}
    for row in _walk(StackConfig, ""):
        if row.key == "stack" or row.key in rows:
            continue
        if row.key == "cluster.backend":
            row = replace(row, type=" or ".join(f"`{b}`" for b in every))
        elif row.key in backends and backends[row.key] != every:
            row = replace(row, meaning=f"({', '.join(backends[row.key])}) {row.meaning}")
        rows[row.key] = row
    password = str(GcsFaultTolerance.model_fields["password_secret_key"].default)
    for key, meaning in (
        (KUBECONFIG_KEY, "Kubeconfig of an `existing` cluster (`kubeconfig_from: secret`)."),
        (password, "Password of the GCS fault-tolerance Redis (the key name is "
                   "`rayservice.gcs_fault_tolerance.password_secret_key`)."),
    ):
        rows[key] = ConfigKey(key, "secret string", "required when used", meaning)
    return list(rows.values())


def markdown_table() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for row in config_keys():
        cells = (f"`{PROJECT}:{row.key}`", row.type, row.default, row.meaning)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def settings_table() -> str:
    """Each shipped deployment's live settings (its user_config model), once per deployment."""
    lines = ["| deployment | setting | default | effect |", "|---|---|---|---|"]
    seen: set[str] = set()
    for app in CATALOG.values():
        for dep in app.deployments:
            if dep.user_config is None or dep.name in seen:
                continue
            seen.add(dep.name)
            for i, row in enumerate(_walk(type(dep.user_config), "", dep.user_config)):
                cells = (dep.name if i == 0 else "", f"`{row.key}`", row.default, row.meaning)
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


_TABLES = {"config-keys": markdown_table, "app-settings": settings_table}


def markers(table: str) -> tuple[str, str]:
    """The begin and end markers around a generated table in a document."""
    return (f"<!-- {table}:begin — generated by `python -m servestack.config_reference` -->",
            f"<!-- {table}:end -->")


def with_table(document: str) -> str:
    """`document` with the text between each pair of markers replaced by the current table."""
    replaced = 0
    for table, render in _TABLES.items():
        begin, end = markers(table)
        head, found, rest = document.partition(begin)
        _, found_end, tail = rest.partition(end)
        if found and found_end:
            document = f"{head}{begin}\n{render()}\n{end}{tail}"
            replaced += 1
    if not replaced:
        raise ValueError(f"the document needs the markers of a table: {markers('config-keys')}")
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="rewrite the tables inside this document")
    args = parser.parse_args()
    if args.write is None:
        print(markdown_table())
        return
    args.write.write_text(with_table(args.write.read_text()))


if __name__ == "__main__":
    main()
