"""Program runs under Pulumi mocks, shared per session: each stack is run once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infra.config import available_stacks
from servestack.offline import ProgramRun, run_stack

STACKS = available_stacks()


@pytest.fixture(scope="session")
def stack_run() -> Callable[[str], ProgramRun]:
    """`stack_run("prod")`: the program's run for stacks/Pulumi.prod.yaml, cached."""
    runs: dict[str, ProgramRun] = {}

    def get(stack: str) -> ProgramRun:
        if stack not in runs:
            runs[stack] = run_stack(stack)
        return runs[stack]

    return get
