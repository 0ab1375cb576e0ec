"""Request tiles → HxWxC uint8 arrays, with a 4xx naming the tile for anything malformed.

A tile arrives as `{"png": "<base64>"}` or `{"array": [[[r, g, b], ...], ...]}` in JSON, or
as PNG bytes (a raw body, a multipart part: apps/classifier/tile_request.py). A PNG is
bounded before anything inflates: its encoded size (413), its IHDR width and height (422
unless 64x64, read by hand before PIL sees it), and its metadata chunks (text, ICC profile:
413 above a size or inflated-size cap, then dropped). So a decompression bomb costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib
from typing import Annotated, Self

import numpy as np
from PIL import Image
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 256 * 1024
"""A 64x64 RGBA tile is ~16 KB raw; anything this large is not a tile."""
MAX_ANCILLARY_BYTES = 64 * 1024
"""Text, ICC profile and other metadata chunks together, as sent (compressed)."""
MAX_INFLATED_CHUNK_BYTES = 1024**2
"""What one compressed metadata chunk (zTXt, iTXt, iCCP) may inflate to."""
_PIXEL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS"})


def _too_large(field: str, message: str) -> ApiError:
    return ApiError(413, "payload_too_large", message, field=field)


def _inflates_within(payload: bytes, limit: int) -> bool:
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(payload, limit)
    except zlib.error:
        return True  # corrupt metadata costs nothing: it is dropped below, never inflated again
    return not inflater.unconsumed_tail


def _zlib_stream(kind: bytes, payload: bytes) -> bytes:
    """The compressed part of a zTXt/iCCP (keyword NUL method data) or a compressed iTXt
    (keyword NUL flag method language NUL translated NUL text); b"" for anything else."""
    keyword_end = payload.find(b"\0")
    if keyword_end < 0:
        return b""
    if kind in (b"zTXt", b"iCCP"):
        return payload[keyword_end + 2:]
    if kind == b"iTXt" and payload[keyword_end + 1:keyword_end + 2] == b"\1":
        language_end = payload.find(b"\0", keyword_end + 3)
        translated_end = payload.find(b"\0", language_end + 1) if language_end >= 0 else -1
        return payload[translated_end + 1:] if translated_end >= 0 else b""
    return b""


def _pixel_chunks_only(data: bytes, field: str) -> bytes:
    """Walk the chunks with bounds: the size from IHDR first, then every metadata chunk
    checked and dropped, so the decoder below only ever sees pixels of a 64x64 image."""
    kept = [PNG_SIGNATURE]
    offset, ancillary = len(PNG_SIGNATURE), 0
    while True:
        if offset + 8 > len(data):
            raise _invalid(field, "PNG data is truncated or corrupt")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 12 + length
        if end > len(data):
            raise _invalid(field, "PNG data is truncated or corrupt")
        payload = data[offset + 8:offset + 8 + length]
        if offset == len(PNG_SIGNATURE):
            if kind != b"IHDR" or length != 13:
                raise _invalid(field, "PNG does not start with its IHDR header")
            width, height = struct.unpack(">II", payload[:8])
            if (width, height) != (TILE_SIZE, TILE_SIZE):
                expected = f"{TILE_SIZE}x{TILE_SIZE}"
                raise _invalid(field, f"image is {width}x{height}, expected {expected}")
        if kind in _PIXEL_CHUNKS:
            kept.append(data[offset:end])
        else:
            ancillary += length
            if ancillary > MAX_ANCILLARY_BYTES:
                raise _too_large(field, f"PNG metadata chunks exceed {MAX_ANCILLARY_BYTES} bytes")
            compressed = _zlib_stream(kind, payload)
            if compressed and not _inflates_within(compressed, MAX_INFLATED_CHUNK_BYTES):
                raise _too_large(field, f"PNG {kind.decode(errors='replace')} chunk inflates "
                                        f"beyond {MAX_INFLATED_CHUNK_BYTES} bytes")
        offset = end
        if kind == b"IEND":
            return b"".join(kept)


def _from_png(encoded: str, field: str) -> TileArray:
    if len(encoded) > MAX_PNG_BYTES * 4 // 3 + 4:
        raise _too_large(field, f"PNG larger than {MAX_PNG_BYTES} bytes; a tile is far smaller")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(field, "not valid base64") from None
    return decode_png_bytes(data, field)


def decode_png_bytes(data: bytes, field: str) -> TileArray:
    """A tile from PNG bytes as sent (raw body or multipart part), with the same bounds."""
    if len(data) > MAX_PNG_BYTES:
        raise _too_large(field, f"PNG larger than {MAX_PNG_BYTES} bytes; a tile is far smaller")
    if not data:
        raise _invalid(field, "empty; expected a PNG tile")
    if not data.startswith(PNG_SIGNATURE):
        raise _invalid(field, _not_png(data))
    pixels = _pixel_chunks_only(data, field)
    try:
        with Image.open(io.BytesIO(pixels), formats=["PNG"]) as image:
            rgb = image.convert("RGB")
    except Exception:  # PIL raises many types for bad pixel data; all mean "corrupt"
        raise _invalid(field, "PNG data is truncated or corrupt") from None
    return np.asarray(rgb, dtype=np.uint8)


def _not_png(data: bytes) -> str:
    """Name what was sent instead, from its header only (nothing is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"expected a PNG, got {image.format or 'an unknown format'}"
    except Exception:  # unreadable, or a bomb in another format: either way not a tile
        return "not a readable image"


def png_bytes(tile: TileArray) -> bytes:
    """PNG of an HxWxC uint8 tile: a raw `application/octet-stream` body or multipart part."""
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_png(tile: TileArray) -> str:
    """Base64 PNG of an HxWxC uint8 tile: what a client sends as `{"png": ...}`."""
    return base64.b64encode(png_bytes(tile)).decode("ascii")
