"""Program runs under Pulumi mocks, one per stack per session, under two contracts:
`unchecked_stack_run` hands back the run as it ended (its `error` may be set), and
`checked_stack_run` raises the program's error instead. Both read the same cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from servestack.offline import ProgramRun, run_stack

SERIAL_DIRS = ("apps", "autoscaling", "benchmarks", "faults", "model_sources",
               "servestack/local", "servestack/rehearse")
"""Directories whose tests start clusters, HAProxy or servers, or time what they measure."""
TESTS = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `serial` every test marked `ray` and every test of SERIAL_DIRS: `make test`
    runs them in one process, in order, at normal priority, and the rest (programs under
    mocks, renders, checks) beside them at low priority, so they take only spare CPU."""
    serial = [TESTS / name for name in SERIAL_DIRS]
    for item in items:
        if item.get_closest_marker("ray") or any(item.path.is_relative_to(d) for d in serial):
            item.add_marker(pytest.mark.serial)


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
