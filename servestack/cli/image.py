"""`servestack image`: the image reference to build and push for a stack and a release.

Builds and CI read the tag from here rather than spelling the convention again; the release
goes through the same validation as `pulumi up --config servestack:image.release=…`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from infra.config import STACKS_DIR, StackConfigError
from infra.stack_file import StackFileError, source_from_stack_file, stack_file
from infra.validation import validate_stack
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_INVALID


@app.command("image")
def image(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name: stacks/Pulumi.<stack>.yaml."),
    release: str | None = typer.Option(
        None, "--release", "-r", help="The release to tag (as servestack:image.release)."
    ),
    gpu: bool = typer.Option(False, "--gpu", help="The GPU flavour (default: CPU)."),
    stacks_dir: Path = typer.Option(
        STACKS_DIR, "--stacks-dir", help="Directory holding the Pulumi.<stack>.yaml files.",
        file_okay=False,
    ),
) -> None:
    """Print `<repository>:<tag>` of the stack's CPU (or GPU) image, for `docker build -t`.

    No digest: a digest names what was pushed, so it is read after the push. Exits 2 when the
    stack or the release is invalid.
    """
    path = stack_file(stack, stacks_dir)
    try:
        if not path.is_file():
            raise FileNotFoundError(f"no stack file at {path}")
        source = source_from_stack_file(path, stack)
        if release is not None:
            source = dataclasses.replace(
                source, values={**source.values, "image.release": release})
        config = validate_stack(source).stack.image
    except (FileNotFoundError, StackFileError, StackConfigError) as error:
        Console(stderr=True).print(Text(str(error), style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"{config.repository}:{config.tag(gpu)}")
