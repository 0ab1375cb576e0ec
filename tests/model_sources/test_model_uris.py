"""Model URIs judged from their text: what the config layer refuses before deploying."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apps.classifier.spec import ClassifierSettings
from apps.embeddings.spec import EmbedderSettings
from apps.model_source.uri import MlflowModelUri, ObjectStoreUri, parse_remote


@pytest.mark.parametrize(("uri", "parsed"), [
    ("s3://team-models/classifier/v1.pt", ObjectStoreUri("s3", "team-models", "classifier/v1.pt")),
    ("gs://team-models/encoders/minilm/", ObjectStoreUri("gs", "team-models", "encoders/minilm/")),
    ("mlflow://models/tile-classifier/3", MlflowModelUri("tile-classifier", "3", None)),
    ("mlflow://models/tile-classifier@prod", MlflowModelUri("tile-classifier", None, "prod")),
])
def test_remote_uris_parse_into_their_parts(uri: str, parsed: object) -> None:
    assert parse_remote(uri) == parsed
    assert str(parsed) == uri


@pytest.mark.parametrize(("uri", "hint"), [
    ("s3://Team_Models/x.pt", "expected s3://<bucket>/<key>"),
    ("s3://team-models", "expected s3://<bucket>/<key>"),
    ("gs://team-models/../etc/passwd", "expected gs://<bucket>/<key>"),
    ("mlflow://models/tile-classifier", "expected mlflow://models/<name>/<version>"),
    ("mlflow://models/tile-classifier/0", "expected mlflow://models/<name>/<version>"),
    ("mlflow://experiments/tile-classifier/1", "expected mlflow://models/<name>/<version>"),
    ("s3://team-models/x.pt?versionId=1", "no query or fragment"),
])
def test_a_bad_uri_fails_validation_naming_the_field(uri: str, hint: str) -> None:
    with pytest.raises(ValidationError) as classifier:
        ClassifierSettings(checkpoint_uri=uri)
    assert classifier.value.errors()[0]["loc"] == ("checkpoint_uri",)
    assert hint in str(classifier.value)
    with pytest.raises(ValidationError) as embedder:
        EmbedderSettings(model_uri=uri)
    assert embedder.value.errors()[0]["loc"] == ("model_uri",)


def test_the_model_uris_a_stack_loads_are_what_infra_derives_from() -> None:
    settings = ClassifierSettings(checkpoint_uri="mlflow://models/tile-classifier@prod")
    assert settings.model_uris() == ("mlflow://models/tile-classifier@prod",)
    assert EmbedderSettings().model_uris() == ()  # the bundled encoder: nothing to fetch
