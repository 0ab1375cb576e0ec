"""`servestack`: the command line. Each command group lives in its own module."""

from __future__ import annotations

import sys

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
    # Command modules register themselves on `app` when imported: only the one being run.
    from servestack.cli.registry import modules_for, register

    register(modules_for(sys.argv[1:]))
    app()
