"""Raw baselines: each app's model called in-process, on the same cores and batch sizes.

This is the ceiling a served app can approach: no HTTP, no proxy, no Ray, no JSON. Each
thread count runs in its own process, because torch fixes its thread pool at first use and
a replica gets its threads the same way (Ray sets OMP_NUM_THREADS from num_cpus).
Inputs are the same texts and tiles the served runs send (benchmarks.workloads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import typer

from benchmarks.latency import LatencySummary
from benchmarks.workloads import search_documents, sentences, tile_png_base64, tiles

BatchCall = Callable[[int], Callable[[], object]]
"""Given a batch size, a zero-argument call that runs one batch of that size."""


def _embeddings() -> BatchCall:
    from apps.embeddings.encoder import encode, load_encoder

    model = load_encoder()
    corpus = sentences(256, seed=1)

    def batch(size: int) -> Callable[[], object]:
        texts = corpus[:size]
        return lambda: encode(model, texts)

    return batch


def _classifier() -> BatchCall:
    """PNG decode + inference: the per-tile work the app does after parsing JSON."""
    from apps.classifier.checkpoint import load_checkpoint
    from apps.classifier.model import predict_probabilities
    from apps.classifier.spec import ClassifierSettings
    from apps.classifier.tile_input import TileInput, decode_tile

    model = load_checkpoint(ClassifierSettings().checkpoint_uri).model
    inputs = [TileInput(png=tile_png_base64(tile)) for tile in tiles(256, seed=1)]

    def batch(size: int) -> Callable[[], object]:
        chosen = inputs[:size]
        return lambda: predict_probabilities(
            model, [decode_tile(tile, f"tiles.{i}") for i, tile in enumerate(chosen)])

    return batch


def _search() -> BatchCall:
    """Embed the queries, then rank the same corpus the served run indexes."""
    from apps.embeddings.encoder import encode, load_encoder
    from apps.embeddings.spec import EMBEDDING_DIM
    from apps.search.index import VectorStore

    model = load_encoder()
    documents = search_documents(SEARCH_CORPUS)
    store = VectorStore(EMBEDDING_DIM)
    texts = [doc["text"] for doc in documents]
    store.add([doc["id"] for doc in documents], texts, encode(model, texts),
              capacity=SEARCH_CORPUS)
    queries = sentences(256, seed=2)

    def batch(size: int) -> Callable[[], object]:
        chosen = queries[:size]
        return lambda: [store.search(vector, 5) for vector in encode(model, chosen)]

    return batch


SEARCH_CORPUS = 500
MODELS: dict[str, Callable[[], BatchCall]] = {
    "classifier": _classifier,
    "embeddings": _embeddings,
    "search": _search,
}


def measure(app: str, batch_sizes: list[int], seconds: float) -> list[dict[str, Any]]:
    """Items/s and per-batch latency for each batch size, after a warm-up per size."""
    batch = MODELS[app]()
    rows = []
    for size in batch_sizes:
        call = batch(size)
        for _ in range(3):
            call()
        latencies: list[float] = []
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds or len(latencies) < 5:
            call()
            latencies.append(time.perf_counter() - now)
        elapsed = time.perf_counter() - start
        summary = LatencySummary.of(latencies)
        rows.append({
            "batch_size": size,
            "batches": len(latencies),
            "items_per_s": round(size * len(latencies) / elapsed, 2),
            "batch_latency": summary.to_json() if summary else None,
        })
    return rows


def run_isolated(app: str, threads: int, batch_sizes: list[int], seconds: float) -> dict[str, Any]:
    """Measure in a fresh process whose torch uses `threads` threads, as a replica would."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "benchmarks.raw", app, "--threads", str(threads),
            "--batch-sizes", ",".join(map(str, batch_sizes)), "--seconds", str(seconds)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                            timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"raw baseline {app} failed:\n{result.stderr[-3000:]}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    app: str = typer.Argument(..., help=f"One of {sorted(MODELS)}"),
    threads: int = typer.Option(1, min=1, help="torch intra-op threads (a replica's num_cpus)."),
    batch_sizes: str = typer.Option("1,8,16,32", help="Comma-separated batch sizes."),
    seconds: float = typer.Option(3.0, min=0.1, help="Measured time per batch size."),
) -> None:
    """Print the raw in-process baseline of one app as JSON."""
    if app not in MODELS:
        raise typer.BadParameter(f"unknown app {app!r}; choose from {sorted(MODELS)}")
    import torch

    torch.set_num_threads(threads)
    sizes = [int(part) for part in batch_sizes.split(",") if part.strip()]
    rows = measure(app, sizes, seconds)
    typer.echo(json.dumps({"app": app, "threads": torch.get_num_threads(), "rows": rows},
                          sort_keys=True))


if __name__ == "__main__":
    cli()
