"""A secret the stack lacks is named, with the command that sets it, by every offline command;
`check --require-secrets` refuses the stack instead, as `pulumi up` will."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from infra.config import StackConfigError
from infra.stack_file import load_stack, source_from_stack_file, stack_file
from infra.validation import validate_stack
from servestack.cli import app, commands  # noqa: F401  (commands register themselves on app)
from servestack.cli.exit_codes import EXIT_INVALID
from servestack.offline import offline_source, run_stack

COMMAND = "`pulumi config set --secret servestack:redisPassword <value>`"


def test_validate_stack_names_a_placeholder_and_refuses_a_missing_secret() -> None:
    filled = source_from_stack_file(stack_file("prod"))
    assert filled.placeholder_keys == {"redisPassword"}
    (absent,) = validate_stack(filled).absent_secrets
    assert absent.startswith("servestack:redisPassword is not set") and COMMAND in absent
    with pytest.raises(StackConfigError, match="redisPassword: missing"):
        validate_stack(source_from_stack_file(stack_file("prod"), fill_secrets=False))


def test_a_secret_given_to_the_offline_run_is_no_placeholder() -> None:
    source = offline_source(stack_file("prod"), secrets={"servestack:redisPassword": "x"})
    assert source.placeholder_keys == frozenset()
    assert run_stack("prod", secrets={"redisPassword": "x"}).absent_secrets == ()


def test_stacks_that_need_no_secret_say_nothing() -> None:
    assert load_stack("dev").absent_secrets == ()


def test_plan_names_the_absent_secret_once_on_stderr() -> None:
    result = CliRunner().invoke(app, ["plan", "--stack", "prod"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(COMMAND) == 1
    assert COMMAND not in result.stdout


def test_check_names_it_and_with_require_secrets_refuses_the_stack() -> None:
    result = CliRunner().invoke(app, ["check", "--stack", "prod"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(COMMAND) == 1

    required = CliRunner().invoke(app, ["check", "--stack", "prod", "--require-secrets"])
    assert required.exit_code == EXIT_INVALID, required.output
    assert "servestack:redisPassword: missing" in required.stderr
    assert "pulumi config set --secret servestack:redisPassword" in required.stderr


def test_check_require_secrets_passes_a_stack_that_needs_none() -> None:
    result = CliRunner().invoke(app, ["check", "--stack", "dev", "--require-secrets"])
    assert result.exit_code == 0, result.output


def test_render_names_it_once(tmp_path: object) -> None:
    result = CliRunner().invoke(app, ["render", "--stack", "prod", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(COMMAND) == 1
