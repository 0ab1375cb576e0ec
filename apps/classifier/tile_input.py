"""Request tiles → HxWxC uint8 arrays, with a 4xx naming the tile for anything malformed.

A tile arrives as `{"png": "<base64>"}` or `{"array": [[[r, g, b], ...], ...]}`. PNG size is
read from the header before any pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Annotated, Self

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from apps.classifier.model import TileArray
from apps.classifier.spec import TILE_CHANNELS, TILE_SIZE
from apps.http_contract import ApiError

TILE_SHAPE = (TILE_SIZE, TILE_SIZE, TILE_CHANNELS)

Channel = Annotated[int, Field(strict=True, ge=0, le=255)]


class TileInput(BaseModel):
    """Exactly one of `png` (base64-encoded PNG) or `array` (HxWxC uint8 nested lists)."""

    model_config = ConfigDict(extra="forbid")

    png: str | None = Field(None, min_length=1, description=f"Base64 PNG, {TILE_SIZE}x{TILE_SIZE}.")
    array: list[list[list[Channel]]] | None = Field(
        None, description=f"{TILE_SIZE}x{TILE_SIZE}x{TILE_CHANNELS} integers in 0..255."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.png is None) == (self.array is None):
            raise ValueError("a tile needs exactly one of 'png' or 'array'")
        return self


def decode_tile(tile: TileInput, field: str) -> TileArray:
    """The tile as a TILE_SHAPE uint8 array; ApiError(422) naming `field` otherwise."""
    if tile.array is not None:
        return _from_array(tile.array, f"{field}.array")
    assert tile.png is not None
    return _from_png(tile.png, f"{field}.png")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_request", message, field=field)


def _from_array(values: list[list[list[int]]], field: str) -> TileArray:
    try:
        array = np.asarray(values, dtype=np.uint8)
    except ValueError:
        raise _invalid(field, f"rows are ragged; expected shape {TILE_SHAPE}") from None
    if array.shape != TILE_SHAPE:
        raise _invalid(field, f"shape {array.shape}, expected {TILE_SHAPE} (height, width, RGB)")
    return array


def _from_png(encoded: str, field: str) -> TileArray:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(field, "not valid base64") from None
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        raise _invalid(field, "not a readable image") from None
    with image:
        if image.format != "PNG":
            raise _invalid(field, f"expected a PNG, got {image.format or 'an unknown format'}")
        if image.size != (TILE_SIZE, TILE_SIZE):
            width, height = image.size
            raise _invalid(field, f"image is {width}x{height}, expected {TILE_SIZE}x{TILE_SIZE}")
        try:
            rgb = image.convert("RGB")
        except (OSError, ValueError):
            raise _invalid(field, "PNG data is truncated or corrupt") from None
    return np.asarray(rgb, dtype=np.uint8)


def encode_png(tile: TileArray) -> str:
    """Base64 PNG of an HxWxC uint8 tile: what a client sends as `{"png": ...}`."""
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
