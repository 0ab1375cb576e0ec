"""`python -m benchmarks.request_cost`: what parsing and answering one request costs, per form.

Before (issue 12): FastAPI's typed body (`json.loads`, then pydantic over the Python objects)
and typed return (pydantic re-validates the response model, then `json.dumps`). After:
pydantic-core parses the bytes once (`model_validate_json`) and orjson writes the dict
(apps/json_io.py). The classifier's raw-bytes form skips JSON and base64 altogether.
Microseconds per request, median of 7 repeats, on this machine; no Ray, no HTTP.
"""

from __future__ import annotations

import base64
import json
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import typer

from apps.classifier.tile_input import TileInput, decode_png_bytes, decode_tile, png_bytes
from apps.classifier.tile_request import ClassifyRequest
from apps.embeddings.app import EmbedRequest, EmbedResponse
from apps.json_io import JsonResponse, parse_json
from benchmarks.workloads import sentences, tiles


def _us(call: Callable[[], object], number: int = 300) -> float:
    return round(statistics.median(timeit.repeat(call, number=number, repeat=7)) / number * 1e6, 1)


def _fastapi_response(model: type[Any], payload: dict[str, Any]) -> Callable[[], bytes]:
    """FastAPI's own path for a typed return value: its response field validates and
    serialises the model (`serialize_response`), then JSONResponse runs `json.dumps`."""
    import asyncio

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute, serialize_response

    app = FastAPI()
    app.post("/", response_model=model)(lambda: None)
    route = next(r for r in app.routes if isinstance(r, APIRoute))
    loop = asyncio.new_event_loop()

    def answer() -> bytes:
        content = loop.run_until_complete(serialize_response(
            field=route.response_field, response_content=model(**payload)))
        return bytes(JSONResponse(content).body)

    return answer


def measure() -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for texts in (1, 8):
        body = json.dumps({"texts": sentences(texts, seed=1)}).encode()
        payload: dict[str, Any] = {"embeddings": [[0.123456789] * 384] * texts, "dim": 384,
                                   "model": "m"}

        def parse_before(body: bytes = body) -> object:
            return EmbedRequest.model_validate(json.loads(body))

        def parse_after(body: bytes = body) -> object:
            return parse_json(body, EmbedRequest)

        def answer_after(payload: dict[str, Any] = payload) -> object:
            return JsonResponse(payload).body

        rows[f"embeddings, {texts} text(s)"] = {
            "parse before": _us(parse_before), "parse after": _us(parse_after),
            "answer before": _us(_fastapi_response(EmbedResponse, payload)),
            "answer after": _us(answer_after),
        }
    tile = tiles(1, seed=1)[0]
    png = png_bytes(tile)
    tile_body = json.dumps({"tiles": [{"png": base64.b64encode(png).decode()}]}).encode()
    rows["classifier, 1 tile: parse + decode"] = {
        "JSON base64 before": _us(lambda: [decode_tile(TileInput.model_validate(t), "t") for t in
                                            json.loads(tile_body)["tiles"]], 100),
        "JSON base64 after": _us(lambda: [decode_tile(t, "t") for t in
                                          parse_json(tile_body, ClassifyRequest).tiles], 100),
        "raw PNG bytes": _us(lambda: decode_png_bytes(png, "<body>"), 100),
    }
    return rows


def main() -> None:
    """Print the table (markdown)."""
    for what, numbers in measure().items():
        typer.echo(f"| {what} | " + " | ".join(f"{k}: {v} µs" for k, v in numbers.items()) + " |")


if __name__ == "__main__":
    typer.run(main)
