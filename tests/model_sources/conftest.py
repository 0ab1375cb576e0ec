"""Fixtures of the model-source tests: real S3, GCS and MLflow servers on loopback.

They are pointed at through the environment, before any Ray starts, so replicas inherit
them as they would inherit a pod's env. Each test gets its own cache directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.model_source.environment import CACHE_DIR_ENV
from tests.model_sources.servers import S3Server, gcs_server, mlflow_server, s3_server

S3_BUCKET = "team-models"
GCS_BUCKET = "team-models-gcs"


@dataclass(frozen=True)
class Stores:
    s3: S3Server
    gcs_endpoint: str
    mlflow_uri: str


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    with ExitStack() as stack:
        s3 = stack.enter_context(s3_server(tmp_path_factory.mktemp("moto")))
        gcs = stack.enter_context(gcs_server())
        mlflow = stack.enter_context(mlflow_server(tmp_path_factory.mktemp("mlflow")))
        saved = dict(os.environ)
        os.environ.update({
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3.endpoint,
            "STORAGE_EMULATOR_HOST": gcs, "MLFLOW_TRACKING_URI": mlflow,
            CACHE_DIR_ENV: str(tmp_path_factory.mktemp("model-cache")),
        })
        from apps.model_source.fetch import object_store_filesystem

        object_store_filesystem("s3").mkdir(S3_BUCKET)
        object_store_filesystem("gs").mkdir(GCS_BUCKET)
        try:
            yield Stores(s3=s3, gcs_endpoint=gcs, mlflow_uri=mlflow)
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stores: Stores) -> Path:
    """A fresh node cache for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(root))
    return root
