"""Pulumi.yaml points the CLI at the program, the venv and the stack files this repo has."""

from __future__ import annotations

import yaml

from infra.config import PROJECT, REPO_ROOT, STACKS_DIR, StackConfig


def test_project_runs_infra_with_the_repo_venv_and_reads_stacks_dir() -> None:
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    assert project["runtime"] == {"name": "python",
                                  "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert (REPO_ROOT / project["main"] / "__main__.py").is_file()
    assert REPO_ROOT / project["stackConfigDir"] == STACKS_DIR


def test_declared_defaults_agree_with_the_stack_config_model() -> None:
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    for key, spec in declared.items():
        assert spec["default"] == StackConfig.model_fields[key].default, key
