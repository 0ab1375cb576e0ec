"""The tile classifier over real HTTP: same answers as the model in-process, live reloads."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import requests

from apps.batching import spec_batching
from apps.classifier.checkpoint import load_checkpoint
from apps.classifier.model import predict_probabilities
from apps.classifier.spec import TILE_CLASSIFIER
from apps.classifier.synthetic_tiles import synthetic_tiles
from apps.classifier.tile_input import encode_png, png_bytes
from tests.apps.harness import HTTP_TIMEOUT_S, DeployFailedError, post

if TYPE_CHECKING:
    from tests.apps.harness import Checkpoints, ServedApps

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    """Four stained tiles, then four plain ones."""
    positives, _ = synthetic_tiles(4, seed=11, positive=True)
    negatives, _ = synthetic_tiles(4, seed=12, positive=False)
    return np.concatenate([positives, negatives])


def _classify(served: ServedApps, body: dict[str, Any]) -> dict[str, Any]:
    response = post(served.url("classifier"), body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _describe() -> dict[str, Any]:
    from ray import serve

    info: dict[str, Any] = serve.get_app_handle("classifier").describe.remote().result()
    return info


def test_png_and_array_tiles_match_the_model_in_process(
    served: ServedApps, checkpoints: Checkpoints, tiles: np.ndarray
) -> None:
    expected = predict_probabilities(load_checkpoint(served.checkpoint_uri).model, tiles)
    as_png = _classify(served, {"tiles": [{"png": encode_png(tile)} for tile in tiles]})
    as_array = _classify(served, {"tiles": [{"array": tile.tolist()} for tile in tiles]})
    np.testing.assert_allclose(as_png["probabilities"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(as_array["probabilities"], expected, rtol=1e-5, atol=1e-6)
    assert as_png["labels"] == ["positive"] * 4 + ["negative"] * 4
    assert as_array["labels"] == as_png["labels"]
    assert as_png["checkpoint"]["uri"] == checkpoints.uri(checkpoints.seed0)
    assert as_png["threshold"] == 0.5


def test_raw_png_bodies_and_multipart_tiles_match_the_json_form(
    served: ServedApps, tiles: np.ndarray
) -> None:
    """The byte forms: one PNG as the whole body, several as multipart file parts."""
    url = served.url("classifier")
    as_json = _classify(served, {"tiles": [{"png": encode_png(tile)} for tile in tiles]})
    raw = [requests.post(url, data=png_bytes(tile), timeout=HTTP_TIMEOUT_S,
                         headers={"content-type": "application/octet-stream"})
           for tile in tiles[:2]]
    assert [r.status_code for r in raw] == [200, 200], raw[0].text
    assert [r.json()["probabilities"][0] for r in raw] == as_json["probabilities"][:2]
    multipart = requests.post(url, timeout=HTTP_TIMEOUT_S, files=[
        ("tile", (f"{index}.png", png_bytes(tile), "image/png"))
        for index, tile in enumerate(tiles)])
    assert multipart.status_code == 200, multipart.text
    assert multipart.json()["probabilities"] == as_json["probabilities"]
    assert multipart.json()["labels"] == as_json["labels"]


def test_tiles_of_one_request_run_in_batches(served: ServedApps) -> None:
    before = _describe()["batching"]["observed_batch_sizes"]
    many, _ = synthetic_tiles(40, seed=3)
    result = _classify(served, {"tiles": [{"array": tile.tolist()} for tile in many]})
    assert len(result["probabilities"]) == 40
    after = _describe()["batching"]["observed_batch_sizes"]
    batches = Counter(
        {int(size): n - before.get(size, 0) for size, n in after.items() if n > before.get(size, 0)}
    )
    assert sum(size * count for size, count in batches.items()) == 40
    assert max(batches) == spec_batching(TILE_CLASSIFIER).max_batch_size


def test_a_new_checkpoint_uri_reloads_the_model_live(
    served: ServedApps, checkpoints: Checkpoints, tiles: np.ndarray
) -> None:
    body = {"tiles": [{"array": tile.tolist()} for tile in tiles]}
    seed0 = _classify(served, body)["probabilities"]
    replica = _describe()["replica"]
    seed1_uri = checkpoints.uri(checkpoints.seed1)
    served.redeploy(
        "classifier", {"TileClassifier": {"user_config": {"checkpoint_uri": seed1_uri}}}
    )
    try:
        reloaded = _classify(served, body)
        expected = predict_probabilities(load_checkpoint(seed1_uri).model, tiles)
        np.testing.assert_allclose(reloaded["probabilities"], expected, rtol=1e-5, atol=1e-6)
        # Both models are confident; they differ in how close to 0 and 1 they get.
        assert not np.allclose(reloaded["probabilities"], seed0, rtol=1e-3, atol=0)
        assert reloaded["checkpoint"]["uri"] == seed1_uri
        assert reloaded["checkpoint"]["weights_sha256"] == load_checkpoint(seed1_uri).weights_sha256
        assert _describe()["replica"] == replica, "reconfigure, not a replica restart"
    finally:
        served.redeploy("classifier")
    np.testing.assert_allclose(_classify(served, body)["probabilities"], seed0, rtol=1e-6)


def test_the_threshold_is_applied_live(served: ServedApps, tiles: np.ndarray) -> None:
    body = {"tiles": [{"array": tile.tolist()} for tile in tiles]}
    served.redeploy("classifier", {"TileClassifier": {"user_config": {"threshold": 0.0}}})
    try:
        result = _classify(served, body)
        assert result["threshold"] == 0.0
        assert result["labels"] == ["positive"] * len(tiles)
    finally:
        served.redeploy("classifier")


def test_a_missing_checkpoint_fails_the_deployment_with_the_reason(served: ServedApps) -> None:
    from apps.classifier.spec import CLASSIFIER

    broken = CLASSIFIER.with_overrides({
        "route_prefix": "/classify-missing",
        "deployments": {"TileClassifier": {
            "num_replicas": 1, "autoscaling": None, "resources": {"num_cpus": 0.1},
            "user_config": {
                "checkpoint_uri": "file:///mnt/models/nonexistent-tile-classifier.pt"},
        }},
    }).model_copy(update={"name": "classifier-missing"})
    try:
        with pytest.raises(DeployFailedError) as failure:
            served.deploy([*served.specs(), broken])
        message = str(failure.value)
        assert message.startswith("classifier-missing:")
        missing = "/mnt/models/nonexistent-tile-classifier.pt"
        assert f"CheckpointError: no checkpoint at {missing}" in message
    finally:
        served.redeploy()
    # The healthy apps deployed next to it kept running with their own checkpoint.
    assert _describe()["checkpoint"]["uri"] == served.checkpoint_uri


def test_a_request_over_the_pixel_budget_gets_413_before_any_tile_is_decoded(
    served: ServedApps, tiles: np.ndarray
) -> None:
    two_tiles = 2 * 64 * 64
    served.redeploy("classifier", {"TileClassifier": {"user_config": {
        "max_request_pixels": two_tiles,
    }}})
    try:
        # Three undecodable tiles: the budget answers before the decoder would say 422.
        refused = post(served.url("classifier"), {"tiles": [{"png": "AAAA"}] * 3})
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert error["code"] == "payload_too_large"
        assert "request costs 12288 pixels" in error["message"]
        assert "budget is 8192 (user_config settings.max_request_pixels)" in error["message"]
        assert _describe()["settings"]["max_request_pixels"] == two_tiles
        assert len(_classify(served, {"tiles": [{"array": t.tolist()} for t in tiles[:2]]})[
            "probabilities"]) == 2
    finally:
        served.redeploy("classifier")
