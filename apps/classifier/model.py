"""The tile classifier network: a small CNN that scores one RGB tile as positive or negative.

Its hyper-parameters travel inside the checkpoint (`TileNetArchitecture`), so a loader can
rebuild exactly the network a checkpoint was trained as and refuse one that does not fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from apps.classifier.spec import TILE_CHANNELS, TILE_SIZE

LABELS = ("negative", "positive")
"""Label names by class index; the network outputs the logit of index 1."""


class TileNetArchitecture(BaseModel):
    """What a checkpoint must say about its network for the loader to rebuild it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("TileNet", pattern="^TileNet$")
    widths: tuple[int, ...] = Field((8, 16, 32), min_length=1, max_length=6)
    in_channels: int = Field(TILE_CHANNELS, ge=1)


class TileNet(nn.Module):
    """Conv blocks → global average pool → one logit; input is uint8-scaled float NCHW."""

    def __init__(self, architecture: TileNetArchitecture) -> None:
        super().__init__()
        self.architecture = architecture
        layers: list[nn.Module] = []
        channels = architecture.in_channels
        for width in architecture.widths:
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N,) for tiles of shape (N, C, H, W) scaled to [0, 1]."""
        # Centre the inputs: uncentred [0, 1] inputs let some seeds collapse to a constant.
        pooled = self.features((tiles - 0.5) * 4.0).mean(dim=(2, 3))
        logits: torch.Tensor = self.head(pooled).squeeze(1)
        return logits


TileArray = npt.NDArray[np.uint8]
"""One tile as the API receives it: HxWxC uint8 (C = RGB)."""


def tiles_to_tensor(tiles: list[TileArray] | npt.NDArray[np.uint8]) -> torch.Tensor:
    """Stack HxWxC uint8 tiles into the float NCHW batch the network expects."""
    batch = np.stack(list(tiles)) if isinstance(tiles, list) else tiles
    expected = (TILE_SIZE, TILE_SIZE, TILE_CHANNELS)
    if batch.ndim != 4 or batch.shape[1:] != expected:
        raise ValueError(f"expected tiles of shape {expected}, got batch {batch.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    return tensor.float().div_(255.0)


def predict_probabilities(model: TileNet, tiles: list[TileArray] | TileArray) -> list[float]:
    """Positive-class probability per tile; the one inference path, shared by app and tests."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(tiles_to_tensor(tiles).to(device))
        probabilities: list[Any] = torch.sigmoid(logits).tolist()
    return [float(p) for p in probabilities]
