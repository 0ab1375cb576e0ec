"""README.md lists every config key the models define, with its type, default and meaning;
the meanings are the fields' own descriptions, so every field a user writes must carry one."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from apps.catalog import CATALOG
from apps.spec import SpecModel
from infra.clusters.spec import backend_name, cluster_specs
from infra.config import REPO_ROOT, StackConfig, Taint
from servestack.config_reference import (
    config_keys,
    markdown_table,
    models_in,
    settings_table,
    undescribed_fields,
    user_models,
    with_table,
)

DOC = REPO_ROOT / "README.md"
APPS_DOC = REPO_ROOT / "docs" / "apps.md"
_SPEC_MODULES = re.compile(r"^(apps\.spec|apps\.\w+\.spec|infra\.config)$")


def test_the_document_carries_the_current_table() -> None:
    text = DOC.read_text()
    assert with_table(text) == text, (
        "README.md is out of date: run `python -m servestack.config_reference --write "
        "README.md`")


def test_the_apps_document_carries_the_current_settings_table() -> None:
    text = APPS_DOC.read_text()
    assert "| Embedder | `max_texts_per_request` | `64` |" in settings_table()
    assert with_table(text) == text, (
        "docs/apps.md is out of date: run `python -m servestack.config_reference --write "
        "docs/apps.md`")


def test_every_field_a_user_writes_has_a_description() -> None:
    missing = undescribed_fields()
    assert not missing, f"add Field(description=...) to: {missing}"


def test_a_field_without_a_description_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Taint.model_fields["value"], "description", None)
    assert undescribed_fields() == ["Taint.value"]


def _subclasses(model: type[BaseModel]) -> set[type[BaseModel]]:
    direct = set(model.__subclasses__())
    return direct.union(*(_subclasses(sub) for sub in direct))


def test_every_config_and_spec_model_is_checked() -> None:
    """user_models() reaches every model of the spec and config modules, app settings too."""
    assert CATALOG  # imports every app's spec module
    declared = {m for m in _subclasses(SpecModel) if _SPEC_MODULES.match(m.__module__)}
    unreached = {m.__name__ for m in declared if m.model_fields} - {
        m.__name__ for m in user_models()}
    assert not unreached, f"no root of user_models() reaches {sorted(unreached)}"
    assert {"EmbedderSettings", "ClassifierSettings", "IndexSettings", "IngressSettings",
            "ReplicaUserConfig", "ServiceLevel", "ExistingCluster"} <= {
        m.__name__ for m in user_models()}


def test_backends_describe_a_shared_key_alike() -> None:
    """The table shows one meaning per cluster.* key, so the backends must agree on it."""
    variants = models_in(StackConfig.model_fields["cluster"].annotation)
    meanings: dict[str, set[str | None]] = {}
    for variant in variants:
        for name, field in variant.model_fields.items():
            meanings.setdefault(name, set()).add(field.description)
    assert {name: found for name, found in meanings.items() if len(found) > 1} == {}


def test_every_key_has_a_meaning() -> None:
    missing = [row.key for row in config_keys() if not row.meaning]
    assert not missing, f"describe these keys (Field(description=...)): {missing}"


def test_every_top_level_field_and_the_secrets_are_listed() -> None:
    keys = {row.key for row in config_keys()}
    assert set(StackConfig.model_fields) - {"stack"} <= keys
    assert {"kubeconfig", "redisPassword", "pools[].accelerator.resource",
            "rayservice.gcs_fault_tolerance.redis_address"} <= keys
    backends = [backend_name(spec) for spec in cluster_specs()]
    assert {"kind", "gke", "eks", "existing"} <= set(backends)
    listed = " or ".join(f"`{backend}`" for backend in backends)
    assert f"| `servestack:cluster.backend` | {listed} |" in markdown_table()
