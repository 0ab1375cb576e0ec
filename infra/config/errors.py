"""The one error a stack's content raises: every (field path, message) problem at once."""

from __future__ import annotations

from infra.config.project import PROJECT


class StackConfigError(ValueError):
    """The stack file is invalid; the message names each field path and how to fix it."""

    def __init__(self, stack: str, problems: list[tuple[str, str]]) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  {PROJECT}:{path}: {message}" for path, message in problems)
        super().__init__(f"stack {stack!r} has an invalid configuration:\n{lines}")
