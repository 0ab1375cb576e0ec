"""What the tests of servestack's doors to Pulumi's and Ray's internals check the same way."""

from __future__ import annotations

import importlib
import inspect
import tomllib
from importlib.metadata import version
from typing import Any

import pytest
from packaging.requirements import Requirement

from infra.config import REPO_ROOT


def internal(distribution: str, module: str, name: str) -> Any:
    """`module.name`, or a failure naming the attribute the installed version lacks."""
    try:
        found = importlib.import_module(module)
    except ImportError as error:
        pytest.fail(f"{distribution} {version(distribution)} has no module {module}: {error}")
    assert hasattr(found, name), f"{distribution} {version(distribution)} has no {module}.{name}"
    return getattr(found, name)


def assert_pinned_as_documented(distribution: str, door_doc: str | None) -> None:
    """pyproject's pin and the door's docstring name the same range, and it holds what runs."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if Requirement(d).name == distribution]
    assert version(distribution) in Requirement(pin).specifier, (version(distribution), pin)
    assert f"`{pin}`" in (door_doc or ""), pin


def assert_takes(distribution: str, module: str, name: str, parameters: list[str]) -> None:
    """`module.name` is callable and its first parameters are the ones its callers pass."""
    function = internal(distribution, module, name)
    assert callable(function), f"{module}.{name} is no longer callable"
    names = list(inspect.signature(function).parameters)
    assert names[: len(parameters)] == parameters, f"{module}.{name}{inspect.signature(function)}"
