"""Fetching from real S3 (moto), GCS (emulator) and MLflow servers into the node cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.model_source.environment import CACHE_MAX_BYTES_ENV
from apps.model_source.errors import ModelSourceError
from apps.model_source.resolve import fetch_remote_model
from servestack.local.free_ports import free_port
from servestack.model_publish import publish
from tests.model_sources.conftest import GCS_BUCKET, S3_BUCKET, Stores

REPO = Path(__file__).resolve().parents[2]


def _artifact(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.parametrize("target", [
    f"s3://{S3_BUCKET}/cache-test/model.bin",
    f"gs://{GCS_BUCKET}/cache-test/model.bin",
    "mlflow://models/cache-test",
])
def test_each_store_serves_the_published_bytes_then_the_cache(
    target: str, tmp_path: Path, cache_dir: Path
) -> None:
    source = _artifact(tmp_path, "model.bin", 50_000)
    uri = publish(source, target)
    first = fetch_remote_model(uri, max_bytes=10**6)
    [local] = [p for p in first.path.rglob("*") if p.is_file()]
    assert local.read_bytes() == source.read_bytes()
    assert first.fetched and cache_dir in first.path.parents
    again = fetch_remote_model(uri, max_bytes=10**6)
    assert not again.fetched and again.digest == first.digest


def test_two_processes_on_one_node_download_once(
    stores: Stores, tmp_path: Path, cache_dir: Path
) -> None:
    source = _artifact(tmp_path, "big.bin", 30 * 1024**2)
    uri = publish(source, f"s3://{S3_BUCKET}/race/big.bin")
    stores.s3.start_recording()
    code = ("from apps.model_source.resolve import fetch_remote_model as f; "
            f"print(f({uri!r}, 10**9).fetched)")
    replicas = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, text=True,
                                 stdout=subprocess.PIPE) for _ in range(2)]
    outputs = sorted(replica.communicate(timeout=120)[0].strip() for replica in replicas)
    assert outputs == ["False", "True"]
    assert stores.s3.object_downloads(S3_BUCKET, "race/big.bin") == 1


def test_a_corrupt_or_truncated_cache_entry_is_never_used(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = _artifact(tmp_path, "model.bin", 50_000)
    uri = publish(source, f"s3://{S3_BUCKET}/corrupt/model.bin")
    first = fetch_remote_model(uri, max_bytes=10**6)
    cached = first.path / "model.bin"
    cached.chmod(0o644)
    cached.write_bytes(source.read_bytes()[:1000])  # a partial file where the whole one was
    again = fetch_remote_model(uri, max_bytes=10**6)
    assert again.fetched, "the bad entry must be dropped and fetched again"
    assert (again.path / "model.bin").read_bytes() == source.read_bytes()


def test_the_cache_evicts_the_least_recently_used_model(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_MAX_BYTES_ENV, str(100_000))
    uris = [publish(_artifact(tmp_path, f"{name}.bin", 40_000), f"s3://{S3_BUCKET}/lru/{name}")
            for name in ("a", "b", "c")]
    a = fetch_remote_model(uris[0], max_bytes=10**6)
    b = fetch_remote_model(uris[1], max_bytes=10**6)
    assert not fetch_remote_model(uris[0], max_bytes=10**6).fetched  # a is now the newer
    c = fetch_remote_model(uris[2], max_bytes=10**6)  # 120 KB > 100 KB: b goes
    blobs = {p.name for p in (cache_dir / "blobs").iterdir()}
    assert blobs == {a.digest, c.digest}, (b.digest, blobs)
    assert fetch_remote_model(uris[1], max_bytes=10**6).fetched


@pytest.mark.parametrize(("uri", "message"), [
    (f"s3://{S3_BUCKET}/no/such/model.pt", "no object or prefix"),
    (f"gs://{GCS_BUCKET}/no/such/model.pt", "no object or prefix"),
    ("mlflow://models/never-registered/1", "has no such model version"),
    ("mlflow://models/never-registered@prod", "has no such model version"),
])
def test_a_missing_model_fails_naming_the_uri(
    uri: str, message: str, cache_dir: Path
) -> None:
    with pytest.raises(ModelSourceError, match=message) as error:
        fetch_remote_model(uri, max_bytes=10**6)
    assert repr(uri) in str(error.value)


def test_an_unreachable_store_fails_fast_naming_the_uri(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    uri = f"s3://{S3_BUCKET}/any/model.pt"
    with pytest.raises(ModelSourceError, match="cannot fetch") as error:
        fetch_remote_model(uri, max_bytes=10**6)
    assert repr(uri) in str(error.value)


def test_a_model_larger_than_allowed_is_refused_before_download(
    stores: Stores, tmp_path: Path, cache_dir: Path
) -> None:
    uri = publish(_artifact(tmp_path, "m.bin", 20_000), f"s3://{S3_BUCKET}/big/m.bin")
    stores.s3.start_recording()
    with pytest.raises(ModelSourceError, match="more than the 10000 allowed"):
        fetch_remote_model(uri, max_bytes=10_000)
    assert stores.s3.object_downloads(S3_BUCKET, "big/m.bin") == 0
