"""Ready-to-paste requests per app: printed by `servestack serve`, sent by the e2e test.

Routes come from the stack's app specs, so a stack that moves an app's `route_prefix`
gets curls that still work. Bodies follow each app's request model (docs/apps.md).
"""

from __future__ import annotations

import base64
import io
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apps.classifier.spec import TILE_SIZE
from apps.spec import ApplicationSpec


@dataclass(frozen=True)
class ExampleRequest:
    description: str
    url: str
    body: dict[str, Any]

    def json_body(self) -> str:
        return json.dumps(self.body, sort_keys=True, separators=(",", ":"))

    def curl(self) -> str:
        return shlex.join([
            "curl", "-s", "-X", "POST", self.url,
            "-H", "content-type: application/json", "-d", self.json_body(),
        ])


def uniform_tile_png(value: int = 200) -> str:
    """A TILE_SIZE² RGB tile of one grey level as base64 PNG: short enough to paste."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (TILE_SIZE, TILE_SIZE), (value, value, value)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _join(base_url: str, prefix: str, path: str) -> str:
    return base_url + (prefix.rstrip("/") + path if path else prefix)


def _embeddings(url: Callable[[str], str]) -> list[ExampleRequest]:
    return [ExampleRequest("embed two texts (384-dim vectors)", url(""),
                           {"texts": ["hello world", "ray serve on kubernetes"]})]


def _classifier(url: Callable[[str], str]) -> list[ExampleRequest]:
    return [ExampleRequest("classify one 64x64 tile (base64 PNG)", url(""),
                           {"tiles_png": [uniform_tile_png()]})]


def _search(url: Callable[[str], str]) -> list[ExampleRequest]:
    return [
        ExampleRequest("index two documents", url("/documents"), {"documents": [
            {"id": "ray", "text": "Ray Serve scales model inference"},
            {"id": "pasta", "text": "Boil the pasta for nine minutes"},
        ]}),
        ExampleRequest("search them", url("/query"), {"query": "serving machine learning models",
                                                     "top_k": 2}),
    ]


_BUILDERS: dict[str, Callable[[Callable[[str], str]], list[ExampleRequest]]] = {
    "classifier": _classifier,
    "embeddings": _embeddings,
    "search": _search,
}


def example_requests(application: ApplicationSpec, base_url: str) -> list[ExampleRequest]:
    """The example calls of one app at its route on `base_url`; [] for an app without any."""
    builder = _BUILDERS.get(application.name)
    if builder is None:
        return []
    return builder(lambda path: _join(base_url, application.route_prefix, path))
