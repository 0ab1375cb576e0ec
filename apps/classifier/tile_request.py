"""A classify request's tiles, in whichever form the client sent them.

- `application/json` (or no Content-Type): `{"tiles": [{"png": "<base64>"} | {"array": ...}]}`;
- `application/octet-stream`: the body is one PNG tile, no base64 (a third smaller, no JSON);
- `multipart/form-data`: every file part is one PNG tile, in order (`curl -F tile=@a.png
  -F tile=@b.png`).

Each tile keeps a field path for its errors (`tiles.0.png`, `<body>`, `tile.1`), so every form
answers malformed input with the same 4xx contract. Nothing is decoded here: the caller
checks counts and the pixel budget first, then decodes off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from apps.classifier.model import TileArray
from apps.classifier.tile_input import TileInput, decode_png_bytes, decode_tile
from apps.http_contract import ApiError
from apps.json_io import JSON_MEDIA_TYPE, parse_json

OCTET_STREAM = "application/octet-stream"
MULTIPART = "multipart/form-data"
MEDIA_TYPES = (JSON_MEDIA_TYPE, OCTET_STREAM, MULTIPART)


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiles: list[TileInput] = Field(min_length=1)


@dataclass(frozen=True)
class TileSource:
    """One tile as received: a JSON tile or PNG bytes, and the field its errors name."""

    field: str
    tile: TileInput | bytes

    def decode(self) -> TileArray:
        if isinstance(self.tile, bytes):
            return decode_png_bytes(self.tile, self.field)
        return decode_tile(self.tile, self.field)


def decode_all(sources: Sequence[TileSource]) -> list[TileArray]:
    """Every tile as an array (CPU work: run it in a thread)."""
    return [source.decode() for source in sources]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_tiles(request: Request, max_tiles: int) -> list[TileSource]:
    """The request's tiles; ApiError 400/413/415/422 for a body no form can be read as."""
    media_type = _media_type(request)
    if media_type == OCTET_STREAM:
        return [TileSource("<body>", await request.body())]
    if media_type == MULTIPART:
        return await _multipart_tiles(request, max_tiles)
    if media_type in ("", JSON_MEDIA_TYPE) or media_type.endswith("+json"):
        parsed = parse_json(await request.body(), ClassifyRequest)
        return [TileSource(f"tiles.{index}", tile) for index, tile in enumerate(parsed.tiles)]
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Type {media_type!r} is not accepted; send one of "
                   f"{', '.join(MEDIA_TYPES)}")


async def _multipart_tiles(request: Request, max_tiles: int) -> list[TileSource]:
    try:
        form = await request.form(max_files=max_tiles, max_fields=max_tiles)
    except (MultiPartException, HTTPException) as error:  # Starlette wraps the first in a 400
        message = str(getattr(error, "detail", None) or getattr(error, "message", error))
        if message.startswith("Too many"):
            raise ApiError(413, "payload_too_large",
                           f"more than {max_tiles} parts, at most {max_tiles} tiles accepted "
                           "(user_config settings.max_tiles_per_request)") from None
        raise ApiError(400, "bad_request", f"unreadable multipart body: {message}") from None
    sources: list[TileSource] = []
    seen: dict[str, int] = {}
    try:
        for name, value in form.multi_items():
            index = seen.get(name, 0)
            seen[name] = index + 1
            field = f"{name}.{index}"
            if not isinstance(value, UploadFile):
                raise ApiError(422, "invalid_request",
                               "a form field, not a file; send each tile as a file part",
                               field=field)
            sources.append(TileSource(field, await value.read()))
    finally:
        await form.close()
    if not sources:
        raise ApiError(422, "invalid_request", "no file parts; send each tile as a file part",
                       field="<body>")
    return sources
