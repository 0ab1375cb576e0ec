"""PNGs built to hurt a decoder, byte by byte: what an attacker would send as a tile.

Shared by the decoder's unit tests and the fuzz run against the live app.
"""

from __future__ import annotations

import base64
import struct
import zlib
from functools import cache

SIGNATURE = b"\x89PNG\r\n\x1a\n"
INFLATED_METADATA_BYTES = 50 * 1024**2


def chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def ihdr(width: int, height: int, colour_type: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))


def png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    return SIGNATURE + ihdr(width, height) + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _deflate_zeros(total: int, block: int = 1024**2) -> bytes:
    packer = zlib.compressobj(9)
    out, left = [], total
    zeros = bytes(block)
    while left:
        out.append(packer.compress(zeros[:min(block, left)]))
        left -= min(block, left)
    out.append(packer.flush())
    return b"".join(out)


def small_grey_tile(extra: bytes = b"") -> bytes:
    """A valid 64x64 greyscale PNG, with `extra` chunks before its pixels."""
    rows = b"".join(b"\0" + bytes([128]) * 64 for _ in range(64))
    return png(64, 64, zlib.compress(rows), extra)


@cache
def hostile_pngs() -> dict[str, bytes]:
    """name → PNG bytes; each one decoded naively costs gigabytes or raises in PIL."""
    zeros = _deflate_zeros(INFLATED_METADATA_BYTES)
    return {
        # 20000 rows of (filter byte + 20000 zeros): 400 MB of pixels in ~390 KB.
        "20000x20000 zeros": png(20000, 20000, _deflate_zeros(20000 * 20001)),
        "width 2^31-1": png(2**31 - 1, 1, zlib.compress(b"\0" * 16)),
        "zTXt inflating to 50 MB": small_grey_tile(chunk(b"zTXt", b"Comment\0\0" + zeros)),
        "iCCP inflating to 50 MB": small_grey_tile(chunk(b"iCCP", b"icc\0\0" + zeros)),
        "iTXt inflating to 50 MB": small_grey_tile(
            chunk(b"iTXt", b"Comment\0\1\0en\0Comment\0" + zeros)),
    }


def as_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
