"""Every broken stack file is refused alike by `plan`, `render`, `check`, `diff` and the program.

Each tests/fixtures/broken-*.yaml says on its `# Expected:` line what its error names: a field
path, `servestack:<path>`, or for a file that is not YAML, `<file>:<line>:<column>`. Every
command must exit 2 and print exactly that, without a traceback; the program (under mocks)
must refuse the stack and register nothing. Before one function validated for all of them,
`plan` passed stacks that `pulumi up` refused and a YAML error was a traceback with exit 1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from scratch_repo import committed_copy
from typer.testing import CliRunner

from infra.program import StackRefused
from infra.stack_file import StackFileError, display_path, stack_name
from servestack.cli import app, commands  # noqa: F401  (commands register themselves on app)
from servestack.offline import run_stack_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BROKEN = sorted(FIXTURES.glob("broken-*.yaml"))
_EXPECTED = re.compile(r"^# Expected: (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    names_it: bool  # the output names the expected field path (or file:line:column)
    traceback: bool


def expected(fixture: Path, shown_file: str) -> str:
    """What the error must contain: `servestack:pools[cpu].max_nodes:` or `<file>:13:7:`."""
    match = _EXPECTED.search(fixture.read_text())
    assert match, f"{fixture.name} has no '# Expected: ...' line"
    return match.group(1).replace("<file>", shown_file) + ":"


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every broken fixture as a stack file, named after the fixture (so prod's rules apply)."""
    directory = tmp_path_factory.mktemp("stacks")
    for fixture in BROKEN:
        shutil.copy(fixture, directory / f"Pulumi.{fixture.stem}.yaml")
    return directory


@pytest.fixture(scope="module")
def diff_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """`servestack diff --base HEAD` once over all of them, in a scratch repo whose working
    tree adds the broken files (the base has none, so only the working tree renders)."""
    repo = committed_copy(tmp_path_factory.mktemp("diff") / "repo")
    command = [sys.executable, "-c", "from servestack.cli import main; main()", "diff",
               "--base", "HEAD", "--out", "report.md"]
    for fixture in BROKEN:
        shutil.copy(fixture, repo / "stacks" / f"Pulumi.{fixture.stem}.yaml")
        command += ["--stack", fixture.stem]
    result = subprocess.run(command, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                            capture_output=True, text=True, timeout=600, check=False)
    report = repo / "report.md"
    return result.returncode, report.read_text() if report.is_file() else result.stderr


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _outcome(code: int, output: str, wanted: str) -> Outcome:
    return Outcome(code, wanted in output, "Traceback" in output)


def _program(path: Path, wanted: str) -> Outcome:
    """The program as the Pulumi CLI runs it: a file that is not YAML never reaches it."""
    try:
        run = run_stack_file(path)
    except StackFileError as error:
        return _outcome(2, str(error), wanted)
    refused = isinstance(run.error, StackRefused) and run.resources == ()
    return _outcome(2 if refused else 0, str(run.error), wanted)


def _diff_section(report: str, stack: str) -> str:
    start = report.find(f"### `{stack}`")
    end = report.find("\n### ", start + 1)
    return report[start:end if end > 0 else None] if start >= 0 else ""


@pytest.mark.parametrize("fixture", BROKEN, ids=[p.stem for p in BROKEN])
def test_every_command_refuses_the_stack_naming_the_same_field(
    fixture: Path, stacks_dir: Path, diff_report: tuple[int, str], tmp_path: Path,
) -> None:
    name = fixture.stem
    path = stacks_dir / f"Pulumi.{name}.yaml"
    wanted = expected(fixture, display_path(path))
    where = ("--stack", name, "--stacks-dir", str(stacks_dir))
    diff_code, report = diff_report
    outcomes = {
        "plan": _outcome(*_cli("plan", *where), wanted),
        "render": _outcome(*_cli("render", "--out", str(tmp_path), *where), wanted),
        "check": _outcome(*_cli("check", *where), wanted),
        "diff": _outcome(diff_code, _diff_section(report, name),
                         expected(fixture, f"stacks/Pulumi.{name}.yaml")),
        "program": _program(path, wanted),
    }
    assert outcomes == dict.fromkeys(outcomes, Outcome(2, True, False)), (wanted, outcomes)
    assert stack_name(path) == name
