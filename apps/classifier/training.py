"""Builds the default tile-classifier checkpoint: a short, seeded, deterministic training run.

Same seed → same weights → same file bytes, so `servestack model build` is idempotent and
a checkpoint can be rebuilt anywhere instead of being stored in git. Training is pinned to
one torch thread because float reductions split across threads may round differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from apps.classifier.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from apps.classifier.model import TileNet, TileNetArchitecture, predict_probabilities
from apps.classifier.synthetic_tiles import synthetic_tiles

MODEL_VERSION = "tile-classifier-v1"
TRAINING_RECIPE = 1
"""Bump when the recipe below changes, so existing checkpoints count as stale."""
TRAIN_TILES = 384
STEPS = 100
BATCH = 32
LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class BuildResult:
    path: Path
    weights_sha256: str
    seed: int
    rebuilt: bool
    holdout_accuracy: float


@contextmanager
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_tile_classifier(seed: int) -> TileNet:
    """Train TileNet on the synthetic blob task; deterministic for a given seed."""
    with _single_thread():
        torch.manual_seed(seed)
        model = TileNet(TileNetArchitecture())
        tiles, labels = synthetic_tiles(TRAIN_TILES, seed=seed)
        inputs = torch.from_numpy(tiles).permute(0, 3, 1, 2).float().div_(255.0)
        targets = torch.from_numpy(labels)
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        loss_fn = nn.BCEWithLogitsLoss()
        order = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(STEPS):
            batch = torch.randint(0, TRAIN_TILES, (BATCH,), generator=order)
            optimiser.zero_grad()
            loss = loss_fn(model(inputs[batch]), targets[batch])
            loss.backward()
            optimiser.step()
        model.eval()
    return model


def holdout_accuracy(model: TileNet, seed: int, count: int = 128) -> float:
    """Accuracy on tiles the run never saw (a different seed stream)."""
    tiles, labels = synthetic_tiles(count, seed=seed + 1_000_003)
    predicted = np.array(predict_probabilities(model, tiles)) >= 0.5
    return float(np.mean(predicted == labels.astype(bool)))


def _training_record(seed: int) -> dict[str, int]:
    return {"seed": seed, "recipe": TRAINING_RECIPE, "steps": STEPS, "batch": BATCH}


def build_checkpoint(path: Path, *, seed: int = 0, force: bool = False) -> BuildResult:
    """Train and save unless `path` already holds a valid checkpoint from the same recipe."""
    path.parent.mkdir(parents=True, exist_ok=True)  # fail on an unwritable place before training
    if path.is_file() and not force:
        try:
            existing = load_checkpoint(path.resolve().as_uri())
        except CheckpointError:
            existing = None
        if existing is not None and dict(existing.training) == _training_record(seed):
            return BuildResult(
                path=path,
                weights_sha256=existing.weights_sha256,
                seed=seed,
                rebuilt=False,
                holdout_accuracy=holdout_accuracy(existing.model, seed),
            )
    model = train_tile_classifier(seed)
    sha = save_checkpoint(model, path, version=MODEL_VERSION, training=_training_record(seed))
    return BuildResult(
        path=path,
        weights_sha256=sha,
        seed=seed,
        rebuilt=True,
        holdout_accuracy=holdout_accuracy(model, seed),
    )
