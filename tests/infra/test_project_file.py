"""Pulumi.yaml points the CLI at the program, the venv and the stack files this repo has."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import yaml

from infra.config import PROJECT, RAY_VERSION, REPO_ROOT, STACKS_DIR, StackConfig
from infra.config.project import pinned_ray_version


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


def test_the_ray_version_is_the_one_pyproject_pins_and_pip_installed(tmp_path: Path) -> None:
    """rayVersion and every image tag derive from RAY_VERSION, read from pyproject.toml."""
    assert importlib.metadata.version("ray") == RAY_VERSION
    fake = tmp_path / "pyproject.toml"
    fake.write_text('[project]\ndependencies = ["pydantic>=2", "ray[serve,llm] == 9.8.7"]\n')
    assert pinned_ray_version(fake) == "9.8.7"
    fake.write_text('[project]\ndependencies = ["ray>=2"]\n')
    with pytest.raises(LookupError, match="pins no exact ray version"):
        pinned_ray_version(fake)
