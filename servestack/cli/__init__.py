"""`servestack`: the command line. Each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="servestack",
    help="Typed Ray Serve on Kubernetes: run stacks locally, plan, render, diff and check them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Typed Ray Serve on Kubernetes: run stacks locally, plan, render, diff and check them."""


def main() -> None:
    # Command modules register themselves on `app` when imported.
    from servestack.cli import commands  # noqa: F401

    app()
