"""Checked program runs under Pulumi mocks, one per stack per session (tests/infra keeps
its own fixture of unchecked runs, since it asserts on failing programs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from servestack.offline import ProgramRun, run_stack


@pytest.fixture(scope="session")
def stack_run() -> Callable[[str], ProgramRun]:
    """`stack_run("prod")`: the program's run for stacks/Pulumi.prod.yaml, cached."""
    runs: dict[str, ProgramRun] = {}

    def get(stack: str) -> ProgramRun:
        if stack not in runs:
            runs[stack] = run_stack(stack).check()
        return runs[stack]

    return get
