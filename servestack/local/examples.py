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

import numpy as np
import numpy.typing as npt

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


def _tile_colours() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Tissue and stain colours of the classifier's synthetic task, read off its own tiles."""
    from apps.classifier.synthetic_tiles import synthetic_tiles

    negative, _ = synthetic_tiles(1, seed=0, positive=False)
    positive, _ = synthetic_tiles(1, seed=0, positive=True)
    background = np.median(negative[0].reshape(-1, 3), axis=0)
    pixels = positive[0].reshape(-1, 3).astype(np.float64)
    stain = np.median(pixels[np.linalg.norm(pixels - background, axis=1) > 60], axis=0)
    return _rgb(background), _rgb(stain)


def _rgb(colour: npt.NDArray[np.float64]) -> tuple[int, int, int]:
    red, green, blue = (round(float(c)) for c in colour)
    return red, green, blue


def tile_png(stained: bool) -> str:
    """A clean TILE_SIZE² tile as base64 PNG: plain tissue, or tissue with one stained blob.

    Flat colours compress to a few hundred bytes, short enough to paste into a shell.
    """
    from PIL import Image, ImageDraw

    background, stain = _tile_colours()
    image = Image.new("RGB", (TILE_SIZE, TILE_SIZE), background)
    if stained:
        centre, radius = TILE_SIZE // 2, TILE_SIZE // 6
        ImageDraw.Draw(image).ellipse(
            (centre - radius, centre - radius, centre + radius, centre + radius), fill=stain
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _join(base_url: str, prefix: str, path: str) -> str:
    """`path` below the app's route prefix; "" is the app's root, the bare prefix."""
    return base_url + (prefix.rstrip("/") + path if path else prefix)


def _embeddings(url: Callable[[str], str]) -> list[ExampleRequest]:
    return [ExampleRequest("embed two texts (384-dim vectors)", url(""),
                           {"texts": ["hello world", "ray serve on kubernetes"]})]


def _classifier(url: Callable[[str], str]) -> list[ExampleRequest]:
    return [ExampleRequest(
        "classify two 64x64 tiles (base64 PNG): plain tissue, then a stained blob",
        url(""), {"tiles": [{"png": tile_png(stained=False)}, {"png": tile_png(stained=True)}]},
    )]


def _search(url: Callable[[str], str]) -> list[ExampleRequest]:
    return [
        ExampleRequest("index two documents", url("/documents"), {"documents": [
            {"id": "ray", "text": "Ray Serve scales model inference"},
            {"id": "pasta", "text": "Boil the pasta for nine minutes"},
        ]}),
        ExampleRequest("search them", url("/query"),
                       {"query": "serving machine learning models", "top_k": 2}),
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
