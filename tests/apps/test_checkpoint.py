"""Checkpoints: built deterministically, fetched by URI scheme, refused loudly when wrong."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from apps.classifier.checkpoint import (
    CheckpointError,
    ReadPolicy,
    checkpoint_document,
    fetch_checkpoint_bytes,
    load_checkpoint,
    register_scheme,
    registered_schemes,
)
from apps.classifier.model import TileNet, TileNetArchitecture, predict_probabilities
from apps.classifier.model_store import (
    MODEL_STORE_ENV,
    default_checkpoint_name,
    default_checkpoint_path,
)
from apps.classifier.spec import ClassifierSettings
from apps.classifier.synthetic_tiles import synthetic_tiles
from apps.classifier.training import build_checkpoint

if TYPE_CHECKING:
    from tests.apps.harness import Checkpoints


def test_same_seed_builds_the_same_bytes(tmp_path: Path, checkpoints: Checkpoints) -> None:
    again = build_checkpoint(tmp_path / "again.pt", seed=0)
    assert again.rebuilt
    assert again.path.read_bytes() == checkpoints.seed0.read_bytes()


def test_an_up_to_date_checkpoint_is_not_rebuilt(checkpoints: Checkpoints) -> None:
    before = checkpoints.seed0.stat().st_mtime_ns
    result = build_checkpoint(checkpoints.seed0, seed=0)
    assert not result.rebuilt
    assert checkpoints.seed0.stat().st_mtime_ns == before


def test_a_different_seed_rebuilds_over_an_existing_file(
    tmp_path: Path, checkpoints: Checkpoints
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(checkpoints.seed0.read_bytes())
    result = build_checkpoint(path, seed=1)
    assert result.rebuilt
    assert path.read_bytes() == checkpoints.seed1.read_bytes()


def test_the_trained_model_separates_stained_from_plain_tiles(checkpoints: Checkpoints) -> None:
    model = load_checkpoint(checkpoints.uri(checkpoints.seed0)).model
    positives, _ = synthetic_tiles(16, seed=4242, positive=True)
    negatives, _ = synthetic_tiles(16, seed=4343, positive=False)
    assert min(predict_probabilities(model, positives)) > 0.9
    assert max(predict_probabilities(model, negatives)) < 0.1


def test_different_seeds_give_different_weights(checkpoints: Checkpoints) -> None:
    a = load_checkpoint(checkpoints.uri(checkpoints.seed0))
    b = load_checkpoint(checkpoints.uri(checkpoints.seed1))
    assert a.weights_sha256 != b.weights_sha256
    assert dict(a.training)["seed"] == 0
    assert dict(b.training)["seed"] == 1


def test_default_uri_names_the_file_model_build_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MODEL_STORE_ENV, str(tmp_path))
    default_uri = ClassifierSettings().checkpoint_uri
    assert default_uri == f"models://{default_checkpoint_name()}"
    assert default_checkpoint_path() == tmp_path / default_checkpoint_name()


def test_models_scheme_reads_from_the_model_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, checkpoints: Checkpoints
) -> None:
    monkeypatch.setenv(MODEL_STORE_ENV, str(tmp_path))
    (tmp_path / "mine.pt").write_bytes(checkpoints.seed1.read_bytes())
    from_store = load_checkpoint("models://mine.pt")
    from_file = load_checkpoint(checkpoints.uri(checkpoints.seed1))
    assert from_store.weights_sha256 == from_file.weights_sha256
    assert from_store.uri == "models://mine.pt"


def test_missing_model_store_file_says_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MODEL_STORE_ENV, str(tmp_path))
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*servestack model build"):
        load_checkpoint("models://absent.pt")


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("file:///definitely/not/here.pt", "no checkpoint at /definitely/not/here.pt"),
        ("file://relative/x.pt", "file URIs need an absolute path"),
        ("models://../escape.pt", "names a file inside the model store"),
        ("models://", "names a file inside the model store"),
        ("s4://bucket/x.pt", "unknown checkpoint URI scheme 's4'"),
        ("just-a-path.pt", "unknown checkpoint URI scheme ''"),
    ],
)
def test_unfetchable_uris_fail_with_a_clear_error(uri: str, fragment: str) -> None:
    with pytest.raises(CheckpointError, match=fragment.replace(".", r"\.").replace("*", ".*")):
        load_checkpoint(uri)


def test_unknown_scheme_lists_the_registered_ones() -> None:
    with pytest.raises(CheckpointError) as error:
        fetch_checkpoint_bytes("s4://bucket/x.pt")
    assert f"registered schemes: {', '.join(registered_schemes())}" in str(error.value)
    assert {"file", "models"} <= set(registered_schemes())


def test_registered_schemes_plug_into_the_loader(checkpoints: Checkpoints) -> None:
    requested: list[str] = []

    def from_memory(uri: str, policy: ReadPolicy) -> bytes:
        requested.append(uri)
        return checkpoints.seed0.read_bytes()

    register_scheme("memtest", from_memory)
    loaded = load_checkpoint("memtest://bucket/model.pt")
    assert requested == ["memtest://bucket/model.pt"]
    assert loaded.uri == "memtest://bucket/model.pt"
    with pytest.raises(ValueError, match="is not a URI scheme"):
        register_scheme("Not A Scheme", from_memory)


def _write(tmp_path: Path, document: object) -> str:
    path = tmp_path / "broken.pt"
    buffer = io.BytesIO()
    torch.save(document, buffer)
    path.write_bytes(buffer.getvalue())
    return path.as_uri()


def _document() -> dict[str, object]:
    torch.manual_seed(0)
    return checkpoint_document(
        TileNet(TileNetArchitecture()), version="test", training={"seed": 0}
    )


def test_bytes_that_are_not_a_checkpoint_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a zip file at all")
    with pytest.raises(CheckpointError, match="is not a readable torch checkpoint"):
        load_checkpoint(path.as_uri())


def test_a_truncated_checkpoint_is_refused(tmp_path: Path, checkpoints: Checkpoints) -> None:
    path = tmp_path / "truncated.pt"
    path.write_bytes(checkpoints.seed0.read_bytes()[:4000])
    with pytest.raises(CheckpointError, match="is not a readable torch checkpoint"):
        load_checkpoint(path.as_uri())


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """weights_only=True: a pickled arbitrary object never gets constructed."""
    with pytest.raises(CheckpointError, match="is not a readable torch checkpoint"):
        load_checkpoint(_write(tmp_path, {"payload": Path("/etc/passwd")}))


def test_missing_keys_are_listed(tmp_path: Path) -> None:
    document = _document()
    del document["weights_sha256"], document["architecture"]
    with pytest.raises(CheckpointError, match=r"missing keys \['architecture', 'weights_sha256'\]"):
        load_checkpoint(_write(tmp_path, document))


def test_modified_weights_fail_the_checksum(tmp_path: Path) -> None:
    document = _document()
    state = document["state_dict"]
    assert isinstance(state, dict)
    state["head.bias"] = state["head.bias"] + 1.0
    with pytest.raises(CheckpointError, match="weights checksum mismatch"):
        load_checkpoint(_write(tmp_path, document))


def test_weights_of_another_shape_are_refused(tmp_path: Path) -> None:
    from apps.classifier.checkpoint import weights_sha256

    document = _document()
    document["architecture"] = TileNetArchitecture(widths=(8, 16, 64)).model_dump(mode="json")
    with pytest.raises(CheckpointError, match=r"weights do not fit .*size mismatch"):
        load_checkpoint(_write(tmp_path, document))
    state = document["state_dict"]
    assert isinstance(state, dict)
    state.pop("head.bias")
    document["weights_sha256"] = weights_sha256(state)
    document["architecture"] = TileNetArchitecture().model_dump(mode="json")
    with pytest.raises(CheckpointError, match=r'Missing key.*"head\.bias"'):
        load_checkpoint(_write(tmp_path, document))


def test_a_checkpoint_for_another_tile_size_is_refused(tmp_path: Path) -> None:
    document = _document()
    document["tile_size"] = 128
    with pytest.raises(CheckpointError, match="trained on 128px tiles, this app serves 64px"):
        load_checkpoint(_write(tmp_path, document))


def test_an_unknown_architecture_is_refused(tmp_path: Path) -> None:
    document = _document()
    document["architecture"] = {"name": "ResNet50"}
    with pytest.raises(CheckpointError, match="invalid architecture"):
        load_checkpoint(_write(tmp_path, document))


def test_reads_are_capped_and_only_regular_files_are_read(tmp_path: Path) -> None:
    """Before the fix `file:///dev/zero` was read until memory ran out."""
    big = tmp_path / "big.pt"
    big.write_bytes(b"\0" * 4096)
    with pytest.raises(CheckpointError, match="is larger than 2048 bytes"):
        load_checkpoint(big.as_uri(), ReadPolicy(max_bytes=2048))
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint("file:///dev/zero")


def test_a_symlink_cannot_lead_out_of_the_allowed_roots(tmp_path: Path) -> None:
    link = tmp_path / "model.pt"
    link.symlink_to("/etc/passwd")
    policy = ReadPolicy(file_roots=(str(tmp_path),))
    with pytest.raises(CheckpointError, match="resolves to /etc/passwd, outside the allowed"):
        load_checkpoint(link.as_uri(), policy)


@pytest.mark.parametrize(("uri", "fragment"), [
    ("file:///etc/passwd", "outside the allowed checkpoint directories"),
    ("file:///mnt/models/../../etc/passwd", "outside the allowed checkpoint directories"),
    ("models://../x", "names a file inside the model store"),
    ("ftp://host/model.pt", "unknown checkpoint URI scheme 'ftp'"),
])
def test_the_settings_refuse_uris_no_replica_could_load(uri: str, fragment: str) -> None:
    from apps.classifier.spec import ClassifierSettings
    from apps.spec import ReplicaUserConfig, SpecError

    with pytest.raises(SpecError) as error:
        ReplicaUserConfig.parse({"settings": {"checkpoint_uri": uri}}, ClassifierSettings)
    (path, message), = error.value.problems
    assert path == "user_config.settings.checkpoint_uri"
    assert fragment in message
