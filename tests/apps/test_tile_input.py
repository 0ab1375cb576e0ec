"""Request tiles decode to exact uint8 arrays, or fail with a 422 naming the tile."""

from __future__ import annotations

import base64
import io
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from apps.classifier.synthetic_tiles import synthetic_tiles
from apps.classifier.tile_input import TILE_SHAPE, TileInput, decode_tile, encode_png
from apps.http_contract import ApiError
from tests.apps.hostile_png import as_base64, chunk, hostile_pngs, small_grey_tile


def _tile() -> np.ndarray:
    tiles, _ = synthetic_tiles(1, seed=7, positive=True)
    return tiles[0]


def _image_b64(size: tuple[int, int], fmt: str, mode: str = "RGB") -> str:
    buffer = io.BytesIO()
    Image.new(mode, size, "white").save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def test_png_round_trip_is_lossless() -> None:
    tile = _tile()
    decoded = decode_tile(TileInput(png=encode_png(tile)), "tiles.0")
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, tile)


def test_array_input_decodes_to_the_same_pixels() -> None:
    tile = _tile()
    decoded = decode_tile(TileInput(array=tile.tolist()), "tiles.0")
    assert np.array_equal(decoded, tile)


def test_rgba_and_greyscale_pngs_are_converted_to_rgb() -> None:
    for mode in ("RGBA", "L"):
        decoded = decode_tile(TileInput(png=_image_b64((64, 64), "PNG", mode)), "tiles.0")
        assert decoded.shape == TILE_SHAPE


@pytest.mark.parametrize(
    ("tile", "fragment"),
    [
        (TileInput(png="not base64!!"), "tiles.3.png: not valid base64"),
        (TileInput(png=base64.b64encode(b"plain text").decode()), "not a readable image"),
        (TileInput(png=_image_b64((32, 64), "PNG")), "image is 32x64, expected 64x64"),
        (TileInput(png=_image_b64((64, 64), "JPEG")), "expected a PNG, got JPEG"),
        (TileInput(array=[[[0, 0, 0]] * 64] * 63), "shape (63, 64, 3), expected (64, 64, 3)"),
        (TileInput(array=[[[0, 0]] * 64] * 64), "shape (64, 64, 2)"),
        (TileInput(array=[[[0, 0, 0]] * 64] * 63 + [[[0, 0, 0]] * 10]), "rows are ragged"),
    ],
)
def test_malformed_tiles_are_client_errors_naming_the_tile(tile: TileInput, fragment: str) -> None:
    with pytest.raises(ApiError) as error:
        decode_tile(tile, "tiles.3")
    assert error.value.status == 422
    assert fragment in error.value.message
    assert error.value.field is not None and error.value.field.startswith("tiles.3.")


def test_a_truncated_png_is_refused_before_it_reaches_the_model() -> None:
    raw = base64.b64decode(encode_png(_tile()))
    with pytest.raises(ApiError, match="truncated or corrupt"):
        decode_tile(TileInput(png=base64.b64encode(raw[: len(raw) // 2]).decode()), "tiles.0")


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"png": "x", "array": [[[0, 0, 0]]]},
        {"array": [[[256, 0, 0]]]},
        {"array": [[[-1, 0, 0]]]},
        {"array": [[[1.5, 0, 0]]]},
        {"array": [[["7", 0, 0]]]},
        {"jpeg": "x"},
    ],
)
def test_tile_shape_rules_are_validation_errors(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TileInput.model_validate(raw)


@pytest.mark.parametrize("name", sorted(hostile_pngs()))
def test_hostile_pngs_get_413_or_422_from_the_bounded_decoder(name: str) -> None:
    """Decompression bombs and inflating metadata: refused before PIL inflates anything
    (before the fix PIL raised DecompressionBombError / ValueError, a 500)."""
    started = time.perf_counter()
    with pytest.raises(ApiError) as error:
        decode_tile(TileInput(png=as_base64(hostile_pngs()[name])), "tiles.0")
    assert error.value.status in (413, 422), error.value.message
    assert error.value.field == "tiles.0.png"
    assert time.perf_counter() - started < 1.0


def test_small_metadata_chunks_are_dropped_and_the_pixels_decoded() -> None:
    text = chunk(b"tEXt", b"Comment\0a short note")
    small_icc = chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * 1000))
    decoded = decode_tile(TileInput(png=as_base64(small_grey_tile(text + small_icc))), "tiles.0")
    assert decoded.shape == TILE_SHAPE
    assert (decoded == 128).all()
