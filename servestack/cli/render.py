"""`servestack render`: the files a stack would apply, offline, one YAML per resource.

Exit codes: 0 when every requested stack rendered, 2 when one is invalid (the others are
still written) or the output directory is not a previous render.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from infra.config import STACKS_DIR, StackConfigError
from infra.stack_file import StackFileError, available_stacks, stack_file
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_INVALID
from servestack.offline import InvalidStackError
from servestack.render import RenderError, render_stack_file


@app.command("render")
def render(
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write <stack>/... into.",
                             file_okay=False),
    stacks: list[str] = typer.Option(
        [], "--stack", "-s", help="Stack to render (repeatable); default: every stack in stacks/."
    ),
    stacks_dir: Path = typer.Option(
        STACKS_DIR, "--stacks-dir", help="Directory holding the Pulumi.<stack>.yaml files.",
        file_okay=False,
    ),
    with_policies: bool = typer.Option(
        False, "--policy-report", help="Also write policy-report.yaml (what `check` finds)."
    ),
) -> None:
    """Render stacks under Pulumi mocks: manifests, descriptions, Serve config, capacity plan
    and preview Pods, with sorted keys and stable file names; secret values never written."""
    errors = Console(stderr=True, soft_wrap=True)
    names = stacks or available_stacks(stacks_dir)
    table = Table(title=f"Rendered into {out}")
    for column in ("stack", "files", "directory"):
        table.add_column(column, justify="right" if column == "files" else "left")
    invalid = False
    for name in names:
        path = stack_file(name, stacks_dir)
        if not path.is_file():
            known = ", ".join(available_stacks(stacks_dir)) or "none"
            errors.print(Text(f"no stack file at {path} (stacks: {known})", style="red"))
            invalid = True
            continue
        try:
            with errors.status(f"rendering stack {name} under mocks…"):
                rendered = render_stack_file(path, out, name, with_policies)
        except StackFileError as error:
            errors.print(Text(str(error), style="red"))  # one line: path:line:column: problem
            invalid = True
            continue
        except (StackConfigError, InvalidStackError, RenderError) as error:
            errors.print(Text(f"stack {name}: {error}", style="red"))
            invalid = True
            continue
        for warning in (*rendered.absent_secrets, *rendered.warnings):
            errors.print(Text(f"stack {name}: warning: {warning}", style="yellow"))
        table.add_row(name, str(len(rendered.files)), str(out / name))
    Console(soft_wrap=True).print(table)
    if invalid:
        raise typer.Exit(EXIT_INVALID)
