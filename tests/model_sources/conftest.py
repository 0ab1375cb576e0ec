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

HERE = Path(__file__).resolve().parent
S3_BUCKET = "team-models"
GCS_BUCKET = "team-models-gcs"


@dataclass(frozen=True)
class Stores:
    s3: S3Server
    gcs_endpoint: str
    mlflow_uri: str


class _Running:
    """The servers and the environment pointing at them, while tests/model_sources runs."""

    def __init__(self) -> None:
        self.stack: ExitStack | None = None
        self.stores: Stores | None = None
        self.saved: dict[str, str] = {}

    def start(self, factory: pytest.TempPathFactory) -> Stores:
        if self.stores is None:
            self.stack = ExitStack()
            s3 = self.stack.enter_context(s3_server(factory.mktemp("moto")))
            gcs = self.stack.enter_context(gcs_server())
            mlflow = self.stack.enter_context(mlflow_server(factory.mktemp("mlflow")))
            self.saved = dict(os.environ)
            os.environ.update({
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3.endpoint,
                "STORAGE_EMULATOR_HOST": gcs, "MLFLOW_TRACKING_URI": mlflow,
                CACHE_DIR_ENV: str(factory.mktemp("model-cache")),
            })
            from apps.model_source.fetch import object_store_filesystem

            object_store_filesystem("s3").mkdir(S3_BUCKET)
            object_store_filesystem("gs").mkdir(GCS_BUCKET)
            self.stores = Stores(s3=s3, gcs_endpoint=gcs, mlflow_uri=mlflow)
        return self.stores

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.close()
            os.environ.clear()
            os.environ.update(self.saved)
        self.stack, self.stores = None, None


_RUNNING = _Running()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last test of this directory, stop the servers and restore the environment,
    so the rest of the session neither pays for them nor sees their variables."""
    yield
    if nextitem is None or HERE not in Path(nextitem.path).resolve().parents:
        _RUNNING.stop()


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    """Started on first use; stopped by the hook above, not at session end."""
    return _RUNNING.start(tmp_path_factory)


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stores: Stores) -> Path:
    """A fresh node cache for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(root))
    return root
