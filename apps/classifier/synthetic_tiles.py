"""A seeded synthetic tile task: stained blob (positive) vs. plain tissue background (negative).

Real pathology data cannot ship in the repo, yet a checkpoint trained on *something*
makes predictions meaningful and testable: a positive tile must score high, a negative low.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from apps.classifier.spec import TILE_CHANNELS, TILE_SIZE

_BACKGROUND = np.array([236.0, 196.0, 214.0])  # eosin-pink tissue
_STAIN = np.array([92.0, 48.0, 132.0])  # haematoxylin-purple nucleus cluster


def synthetic_tiles(
    count: int, *, seed: int, positive: bool | None = None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """`count` HxWxC uint8 tiles and their 0/1 labels; `positive` forces one class."""
    rng = np.random.default_rng(seed)
    if positive is None:
        labels = rng.integers(0, 2, size=count).astype(np.float32)
    else:
        labels = np.full(count, 1.0 if positive else 0.0, dtype=np.float32)
    tint = rng.normal(0.0, 10.0, size=(count, 1, 1, TILE_CHANNELS))
    noise = rng.normal(0.0, 12.0, size=(count, TILE_SIZE, TILE_SIZE, TILE_CHANNELS))
    tiles = _BACKGROUND + tint + noise

    grid = np.arange(TILE_SIZE, dtype=np.float64)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    centres = rng.uniform(12, TILE_SIZE - 12, size=(count, 2))
    radii = rng.uniform(6, 14, size=count)
    distance = np.hypot(
        rows[None] - centres[:, 0, None, None], cols[None] - centres[:, 1, None, None]
    )
    blob = (distance < radii[:, None, None]) & (labels[:, None, None] > 0)
    tiles = np.where(blob[..., None], _STAIN + noise, tiles)
    return np.clip(np.rint(tiles), 0, 255).astype(np.uint8), labels
