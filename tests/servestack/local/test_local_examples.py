"""The printed curls: valid shell, bodies the apps' own request models accept, stack routes."""

from __future__ import annotations

import base64
import io
import json
import shlex

from PIL import Image
from pydantic import BaseModel

from apps.classifier.app import ClassifyRequest
from apps.classifier.spec import TILE_SIZE
from apps.classifier.tile_input import TILE_SHAPE, decode_tile
from apps.embeddings.app import EmbedRequest
from apps.search.app import AddDocumentsRequest, QueryRequest
from infra.stack_file import load_stack_config
from servestack.local.examples import ExampleRequest, example_requests, tile_png

BASE = "http://127.0.0.1:8000"


def examples_by_app() -> dict[str, list[ExampleRequest]]:
    apps = load_stack_config("local").applications
    return {app.name: example_requests(app, BASE) for app in apps}


def test_every_local_app_has_an_example_at_its_route() -> None:
    examples = examples_by_app()
    assert [e.url for e in examples["embeddings"]] == [f"{BASE}/embed"]
    assert [e.url for e in examples["classifier"]] == [f"{BASE}/classify"]
    assert [e.url for e in examples["search"]] == [f"{BASE}/search/documents",
                                                   f"{BASE}/search/query"]


def test_curl_is_one_pasteable_command_carrying_the_json_body() -> None:
    for examples in examples_by_app().values():
        for example in examples:
            argv = shlex.split(example.curl())
            assert argv[:5] == ["curl", "-s", "-X", "POST", example.url]
            assert json.loads(argv[argv.index("-d") + 1]) == example.body


def test_bodies_validate_against_the_apps_request_models() -> None:
    models: dict[str, list[type[BaseModel]]] = {
        "embeddings": [EmbedRequest],
        "classifier": [ClassifyRequest],
        "search": [AddDocumentsRequest, QueryRequest],
    }
    for app, examples in examples_by_app().items():
        for model, example in zip(models[app], examples, strict=True):
            model.model_validate(example.body)


def test_example_tiles_are_pngs_the_classifier_decodes() -> None:
    for stained in (False, True):
        encoded = tile_png(stained)
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            assert (image.format, image.size) == ("PNG", (TILE_SIZE, TILE_SIZE))
        request = ClassifyRequest.model_validate({"tiles": [{"png": encoded}]})
        assert decode_tile(request.tiles[0], "tiles.0").shape == TILE_SHAPE


def test_urls_follow_a_stack_that_moves_a_route() -> None:
    embeddings = next(a for a in load_stack_config("local").applications if a.name == "embeddings")
    moved = embeddings.with_overrides({"route_prefix": "/v2/embed"})
    assert [e.url for e in example_requests(moved, BASE)] == [f"{BASE}/v2/embed"]
