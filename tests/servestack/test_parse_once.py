"""An offline run parses its stack once: the placeholders it fills, the program's own
validation and the absent secrets' report all read the same parse (infra.validation's
parsing_once), because the run validates the stack as the program reads it."""

from __future__ import annotations

import pytest

import infra.validation
from infra.stack_file import load_stack, source_from_stack_file, stack_file
from infra.validation import validate_stack
from servestack.offline import run_stack


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    counted: list[str] = []
    parse = infra.validation.parse_stack_config

    def counting(stack: str, *args: object, **kwargs: object) -> object:
        counted.append(stack)
        return parse(stack, *args, **kwargs)

    monkeypatch.setattr(infra.validation, "parse_stack_config", counting)
    return counted


def test_an_offline_run_with_a_placeholder_parses_its_stack_once(parses: list[str]) -> None:
    run = run_stack("prod").check()
    assert run.absent_secrets, "prod's redisPassword should be a placeholder"
    assert parses == ["prod"]


def test_loading_a_stack_parses_it_once(parses: list[str]) -> None:
    load_stack("prod")
    assert parses == ["prod"]


def test_outside_a_run_each_validation_parses_afresh(parses: list[str]) -> None:
    source = source_from_stack_file(stack_file("dev"))
    validate_stack(source)
    validate_stack(source)
    assert parses == ["dev", "dev", "dev"]


def test_an_offline_source_and_its_absent_secrets_parse_once_in_a_scope(
    parses: list[str],
) -> None:
    from servestack.diffing import absent_secrets, offline_source, parsing_once

    with parsing_once():  # the scope diff_against reads the working tree's stacks in
        absent = absent_secrets(offline_source(stack_file("prod"), "prod"))
    assert absent
    assert parses == ["prod"]
