"""Program runs under Pulumi mocks, one per stack per session, under two contracts:
`unchecked_stack_run` hands back the run as it ended (its `error` may be set), and
`checked_stack_run` raises the program's error instead. Both read the same cache."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from servestack.offline import ProgramRun, run_stack


@pytest.fixture(scope="session")
def unchecked_stack_run() -> Callable[[str], ProgramRun]:
    """`unchecked_stack_run("prod")`: the run for stacks/Pulumi.prod.yaml, error included."""
    runs: dict[str, ProgramRun] = {}

    def get(stack: str) -> ProgramRun:
        if stack not in runs:
            runs[stack] = run_stack(stack)
        return runs[stack]

    return get


@pytest.fixture(scope="session")
def checked_stack_run(
    unchecked_stack_run: Callable[[str], ProgramRun],
) -> Callable[[str], ProgramRun]:
    """`checked_stack_run("prod")`: the same run, but the program's error is raised."""
    return lambda stack: unchecked_stack_run(stack).check()
