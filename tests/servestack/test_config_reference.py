"""README.md lists every config key the models define, with its type and default."""

from __future__ import annotations

from infra.config import REPO_ROOT, StackConfig
from servestack.config_reference import config_keys, markdown_table, with_table

DOC = REPO_ROOT / "README.md"


def test_the_document_carries_the_current_table() -> None:
    text = DOC.read_text()
    assert with_table(text) == text, (
        "README.md is out of date: run `python -m servestack.config_reference --write "
        "README.md`")


def test_every_key_has_a_meaning() -> None:
    missing = [row.key for row in config_keys() if not row.meaning]
    assert not missing, f"describe these keys (Field(description=...)): {missing}"


def test_every_top_level_field_and_the_secrets_are_listed() -> None:
    keys = {row.key for row in config_keys()}
    assert set(StackConfig.model_fields) - {"stack"} <= keys
    assert {"kubeconfig", "redisPassword", "pools[].accelerator.resource",
            "rayservice.gcs_fault_tolerance.redis_address"} <= keys
    assert "| `servestack:cluster.backend` | `kind` or `gke` or `eks` or `existing` |" in (
        markdown_table())
