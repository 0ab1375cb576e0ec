"""One render of every shipped stack, shared by the render and checkov tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.stack_file import available_stacks, stack_file
from servestack.render import render_stack_file


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render")
    for stack in available_stacks():
        render_stack_file(stack_file(stack), out, stack)
    return out
