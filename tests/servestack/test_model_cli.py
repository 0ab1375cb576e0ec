"""`servestack model build`: writes the default checkpoint where models:// looks for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import servestack.cli.commands
from apps.classifier.checkpoint import load_checkpoint
from apps.classifier.model_store import MODEL_STORE_ENV, default_checkpoint_name
from apps.classifier.spec import ClassifierSettings
from servestack.cli import app


def servestack(*args: str) -> Result:
    return CliRunner().invoke(app, ["model", "build", *args])


def test_help_names_the_default_file() -> None:
    result = servestack("--help")
    assert result.exit_code == 0
    assert default_checkpoint_name() in result.stdout


def test_builds_the_checkpoint_the_default_uri_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MODEL_STORE_ENV, str(tmp_path))
    first = servestack()
    assert first.exit_code == 0, first.output
    assert "built" in first.stdout
    written = tmp_path / default_checkpoint_name()
    assert oct(written.stat().st_mode & 0o777) == oct(0o644)
    loaded = load_checkpoint(ClassifierSettings().checkpoint_uri)
    assert loaded.weights_sha256 in first.stdout.replace("\n", "").replace("│", "").replace(" ", "")

    again = servestack()
    assert again.exit_code == 0, again.output
    assert "up to date" in again.stdout


def test_out_and_seed_choose_file_and_weights(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "seed3.pt"
    result = servestack("--out", str(out), "--seed", "3")
    assert result.exit_code == 0, result.output
    assert dict(load_checkpoint(out.as_uri()).training)["seed"] == 3


def test_an_unwritable_destination_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = servestack("--out", str(blocker / "model.pt"))
    assert result.exit_code == 1
    assert "cannot write" in result.output


def test_a_negative_seed_is_a_usage_error() -> None:
    assert servestack("--seed", "-1").exit_code == 2
