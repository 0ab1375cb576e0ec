"""`servestack model publish` against real S3 (moto) and MLflow servers."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner, Result

import servestack.cli.commands  # noqa: F401 - registers the commands
from apps.model_source.resolve import fetch_remote_model
from servestack.cli import app
from tests.model_sources.conftest import S3_BUCKET


def publish(*args: str) -> Result:
    return CliRunner().invoke(app, ["model", "publish", *args])


def _artifact(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    path.write_bytes(os.urandom(4096))
    return path


def test_publish_to_s3_prints_the_uri_that_serves_the_file(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = _artifact(tmp_path)
    result = publish(f"s3://{S3_BUCKET}/cli/model.pt", "--file", str(source))
    assert result.exit_code == 0, result.output
    uri = result.stdout.strip().splitlines()[0]
    assert uri == f"s3://{S3_BUCKET}/cli/model.pt"
    fetched = fetch_remote_model(uri, max_bytes=10**6)
    assert (fetched.path / "model.pt").read_bytes() == source.read_bytes()


def test_publish_to_mlflow_registers_a_version_and_moves_the_alias(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = _artifact(tmp_path)
    result = publish("mlflow://models/cli-model", "--file", str(source), "--alias", "prod")
    assert result.exit_code == 0, result.output
    uri = result.stdout.strip().splitlines()[0]
    assert uri == "mlflow://models/cli-model@prod"
    fetched = fetch_remote_model(uri, max_bytes=10**6)
    assert fetched.resolved == "models:/cli-model/1"
    assert (fetched.path / "model.pt").read_bytes() == source.read_bytes()


def test_bad_targets_are_usage_errors(tmp_path: Path, cache_dir: Path) -> None:
    source = str(_artifact(tmp_path))
    alias_on_s3 = publish(f"s3://{S3_BUCKET}/x.pt", "--file", source, "--alias", "prod")
    assert alias_on_s3.exit_code == 2
    assert "--alias applies to mlflow:// targets only" in alias_on_s3.output
    bad_bucket = publish("s3://Not_A_Bucket/x.pt", "--file", source)
    assert bad_bucket.exit_code == 2
    assert "expected s3://<bucket>/<key>" in bad_bucket.output
