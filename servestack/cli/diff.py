"""`servestack diff`: what a change would do to each stack, as a Markdown report.

Renders `--base` in a temporary git worktree and the working tree (each with its own code),
then reports resources added/changed/removed, the Serve config field by field, whether KubeRay
updates Serve in place or builds a new Ray cluster, the capacity plan delta, and the policy
results of the working tree. Exit 2 when the diff cannot be computed or a stack does not render.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from servestack.cli import app
from servestack.cli.exit_codes import EXIT_INVALID
from servestack.diffing import DiffError, diff_against
from servestack.diffing.report import markdown


@app.command("diff")
def diff(
    base: str = typer.Option(..., "--base", "-b", help="Git ref to compare, e.g. origin/main."),
    stacks: list[str] = typer.Option(
        [], "--stack", "-s", help="Stack to compare (repeatable); default: every stack."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the Markdown report here instead of printing it.",
        dir_okay=False,
    ),
) -> None:
    """Compare the working tree's stacks with those of a git ref, offline."""
    errors = Console(stderr=True, soft_wrap=True)
    try:
        with errors.status(f"rendering {base} and the working tree under mocks…"):
            result = diff_against(base, stacks)
    except DiffError as error:
        errors.print(Text(str(error), style="red"))
        raise typer.Exit(EXIT_INVALID) from None
    for stack in result.stacks:
        for absent in stack.absent_secrets:
            errors.print(Text(f"stack {stack.stack}: warning: {absent}", style="yellow"))
    report = markdown(result)
    if out is None:
        typer.echo(report, nl=False)
    else:
        out.write_text(report)
        table = Table(title=f"servestack diff {base} → working tree (report: {out})")
        for column in ("stack", "resources", "RayService rollout", "Serve fields"):
            table.add_column(column)
        for stack in result.stacks:
            table.add_row(
                stack.stack,
                "does not render" if stack.base_error or stack.head_error
                else str(len(stack.resources)),
                ", ".join(r.rollout for r in stack.rayservices) or "-",
                str(sum(len(r.serve_changes) for r in stack.rayservices)),
            )
        Console(stderr=True, soft_wrap=True).print(table)
    if any(s.base_error or s.head_error for s in result.stacks):
        raise typer.Exit(EXIT_INVALID)
