"""Deterministic inputs shared by the raw baselines and the served runs.

The served request bodies and the raw in-process calls are built from the same texts and
tiles, so the two sides do the same model work and differ only by what Serve adds.
"""

from __future__ import annotations

import base64
import io
import random
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.loadgen import Workload

_WORDS = (
    "ray", "serve", "scales", "model", "inference", "across", "replicas", "while",
    "kubernetes", "schedules", "pods", "on", "nodes", "the", "operator", "reconciles", "a",
    "rayservice", "and", "the", "autoscaler", "adds", "workers", "when", "queues", "grow",
    "embeddings", "turn", "sentences", "into", "vectors", "a", "classifier", "scores",
    "image", "tiles", "search", "finds", "the", "nearest", "documents", "latency",
    "throughput", "batching", "requests", "cores", "threads", "memory", "budget",
)


def sentences(count: int, seed: int = 0, words: tuple[int, int] = (8, 20)) -> list[str]:
    """`count` pseudo-sentences of 8-20 words (about the length of a search query or title)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(_WORDS, k=rng.randint(*words))) for _ in range(count)]


def tiles(count: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    from apps.classifier.synthetic_tiles import synthetic_tiles

    generated, _ = synthetic_tiles(count, seed=seed)
    return generated


def tile_png_base64(tile: npt.NDArray[np.uint8]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(tile, mode="RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


POOL = 64
"""Distinct bodies per workload: enough that no cache could help, few enough to build fast."""


def embeddings_workload(route_prefix: str) -> Workload:
    bodies: list[Any] = [{"texts": [text]} for text in sentences(POOL, seed=1)]
    return Workload.json("embeddings: 1 text/request", route_prefix, bodies)


def classifier_workload(route_prefix: str) -> Workload:
    bodies: list[Any] = [{"tiles": [{"png": tile_png_base64(tile)}]}
                         for tile in tiles(POOL, seed=1)]
    return Workload.json("classifier: 1 tile/request", route_prefix, bodies)


def search_query_workload(route_prefix: str, top_k: int = 5) -> Workload:
    bodies: list[Any] = [{"query": text, "top_k": top_k} for text in sentences(POOL, seed=2)]
    return Workload.json(f"search: 1 query/request, top_k={top_k}",
                         route_prefix.rstrip("/") + "/query", bodies)


def search_documents(count: int) -> list[dict[str, str]]:
    """The corpus indexed before search queries are measured (same on both sides)."""
    return [{"id": f"doc-{i:05d}", "text": text}
            for i, text in enumerate(sentences(count, seed=3, words=(12, 40)))]
