"""Publish a model artifact where a stack can read it: an object store or the MLflow registry.

The publisher uses the same clients the replicas fetch with (s3fs, gcsfs, MLflow), with
credentials and endpoints from the environment (`AWS_*`, Google default credentials,
`MLFLOW_TRACKING_URI`/`MLFLOW_TRACKING_TOKEN`), and returns the URI to put in the stack.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from apps.model_source.fetch import object_store_filesystem
from apps.model_source.uri import MlflowModelUri, ObjectStoreUri, parse_remote

MLFLOW_EXPERIMENT = "servestack-model-publish"


class PublishError(RuntimeError):
    """The artifact could not be published; the message names the target."""


def publish(source: Path, target: str, *, alias: str | None = None) -> str:
    """Upload `source` (a file or a directory) to `target`; returns the URI to serve.

    `target` is `s3://bucket/key`, `gs://bucket/key` or `mlflow://models/<name>` (a new
    version of that registered model; with `alias`, the alias is moved to it)."""
    if not source.exists():
        raise PublishError(f"{source} does not exist")
    if target.startswith("mlflow://models/") and "/" not in target.removeprefix(
        "mlflow://models/"
    ) and "@" not in target:
        return _publish_mlflow(source, target.removeprefix("mlflow://models/"), alias)
    parsed = parse_remote(target)
    if isinstance(parsed, MlflowModelUri):
        raise PublishError(
            f"{target!r}: publish to mlflow://models/<name>; the registry assigns the version"
        )
    return _publish_object_store(source, parsed)


def _publish_object_store(source: Path, target: ObjectStoreUri) -> str:
    fs = object_store_filesystem(target.scheme)
    remote = f"{target.bucket}/{target.key}".rstrip("/")
    try:
        if source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                fs.put_file(str(path), f"{remote}/{path.relative_to(source).as_posix()}")
        else:
            fs.put_file(str(source), remote)
    except Exception as error:  # the clients raise many types; all mean "not published"
        raise PublishError(f"cannot upload {source} to {target}: {error}") from None
    return str(target)


def _publish_mlflow(source: Path, name: str, alias: str | None) -> str:
    # MLflow prints "View run ..." links on stdout; stdout carries only the URI.
    with contextlib.redirect_stdout(sys.stderr):
        return _register_in_mlflow(source, name, alias)


def _register_in_mlflow(source: Path, name: str, alias: str | None) -> str:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else \
            client.create_experiment(MLFLOW_EXPERIMENT)
        run = client.create_run(experiment_id, run_name=f"publish {name}")
        if source.is_dir():
            client.log_artifacts(run.info.run_id, str(source), artifact_path="model")
        else:
            client.log_artifact(run.info.run_id, str(source), artifact_path="model")
        client.set_terminated(run.info.run_id)
        try:
            client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        if alias:
            client.set_registered_model_alias(name, alias, version.version)
    except MlflowException as error:
        raise PublishError(
            f"cannot register {source} as {name!r} at {mlflow.get_tracking_uri()}: "
            f"{' '.join(error.message.split())[:300]}"
        ) from None
    return f"mlflow://models/{name}@{alias}" if alias else \
        f"mlflow://models/{name}/{version.version}"
