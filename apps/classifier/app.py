"""The tile classifier application: `POST /classify` tiles → probabilities + labels.

Tiles arrive as JSON (`{"tiles": [...]}`, base64 PNG or arrays), as one raw PNG body
(`application/octet-stream`) or as multipart PNG parts (apps/classifier/tile_request.py).

Every tile of every request joins one batch queue (apps/batching.py), so concurrent requests share a
forward pass. The checkpoint comes from `settings.checkpoint_uri` in the live user_config:
reconfigure loads and verifies a new one *before* swapping it in. When that fails on a
replica that already serves a model, reconfigure does not raise (Ray would replace the
replica, and the replacements would fail the same way): it keeps the old model and every
old setting, and reports the failure under `rollout` in `GET /classify/` (apps/rollout.py).
Only a replica with no model yet fails its start, so Ray shows the reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application, Deployment

from apps.batching import AdaptiveBatcher, BatchRecorder, spec_batching
from apps.classifier.checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    ReadPolicy,
    load_checkpoint,
)
from apps.classifier.device import inference_device
from apps.classifier.model import LABELS, TileArray, predict_probabilities
from apps.classifier.spec import (
    CLASSIFIER,
    TILE_CHANNELS,
    TILE_CLASSIFIER,
    TILE_SIZE,
    ClassifierSettings,
)
from apps.classifier.tile_request import (
    MULTIPART,
    OCTET_STREAM,
    ClassifyRequest,
    decode_all,
    read_tiles,
)
from apps.http_contract import ApiError, install_error_contract, require_at_most, require_budget
from apps.json_io import JsonResponse, openapi_body
from apps.model_source.uri import is_remote
from apps.rollout import RolloutReport
from apps.spec import ApplicationSpec, ReplicaUserConfig, SpecError


class ClassifyResponse(BaseModel):
    """What POST /classify answers (documentation: the route writes the dict with orjson)."""

    probabilities: list[float] = Field(description="P(positive) per tile, in request order.")
    labels: list[str] = Field(description=f"{LABELS[1]!r} where probability >= threshold.")
    threshold: float
    checkpoint: dict[str, Any]


CLASSIFY_BODY = openapi_body(ClassifyRequest, extra={
    OCTET_STREAM: {"schema": {"type": "string", "format": "binary",
                              "description": "One PNG tile, as bytes."}},
    MULTIPART: {"schema": {"type": "object", "additionalProperties": {
        "type": "array", "items": {"type": "string", "format": "binary"}},
        "description": "Every file part is one PNG tile, in order."}},
})

api = install_error_contract(
    FastAPI(title="servestack tile classifier", description=__doc__, docs_url=None, redoc_url=None)
)


class TileClassifierReplica:
    """One TileClassifier replica: the model, its batch queue and its HTTP routes."""

    def __init__(self) -> None:
        self._settings = ClassifierSettings()
        self._checkpoint: LoadedCheckpoint | None = None
        self._rollout: RolloutReport | None = None
        self._batches = BatchRecorder(spec_batching(TILE_CLASSIFIER))
        self._batcher = AdaptiveBatcher(self._classify_batch, spec_batching(TILE_CLASSIFIER))
        self._device = inference_device(ray.get_gpu_ids())

    def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        """Parse, then load the checkpoint if its URI changed, then swap: all or nothing.

        A failure raises only while no model is loaded; afterwards it keeps the old model
        and settings and records the failure (see the module docstring)."""
        try:
            batching, settings = ReplicaUserConfig.parse(user_config, ClassifierSettings)
            checkpoint = self._checkpoint
            # A remote URI (an alias, an overwritten object) may name new bytes at the same
            # text: ask the store again on every update; the node cache makes it cheap.
            if checkpoint is None or checkpoint.uri != settings.checkpoint_uri \
                    or is_remote(settings.checkpoint_uri):
                policy = ReadPolicy(max_bytes=int(settings.max_checkpoint_bytes),
                                    file_roots=settings.file_roots)
                checkpoint = load_checkpoint(settings.checkpoint_uri, policy)
                checkpoint.model.to(self._device)
        except (SpecError, CheckpointError) as error:
            if self._checkpoint is None:
                raise
            self._rollout = RolloutReport.refused(
                user_config, "checkpoint_uri", error, self._checkpoint.describe())
            return
        self._batches.apply(self._batcher, batching)
        self._checkpoint = checkpoint
        self._settings = settings
        self._rollout = RolloutReport(status="applied", requested=settings.checkpoint_uri,
                                      serving=checkpoint.describe())

    @property
    def max_request_bytes(self) -> int:
        return int(self._settings.max_request_bytes)

    def _loaded(self) -> LoadedCheckpoint:
        if self._checkpoint is None:
            raise ApiError(503, "not_ready", "no checkpoint loaded yet; the replica is starting")
        return self._checkpoint

    async def _classify_batch(self, tiles: list[TileArray]) -> list[float]:
        self._batches.record(len(tiles))
        model = self._loaded().model
        return await asyncio.to_thread(predict_probabilities, model, tiles)

    async def classify(self, tiles: list[TileArray]) -> list[float]:
        """Handle entry point: P(positive) per HxWxC uint8 tile, through the batch queue."""
        return list(await asyncio.gather(*(self._batcher.submit(tile) for tile in tiles)))

    def describe(self) -> dict[str, Any]:
        """Checkpoint in use, live settings and batching, including batch sizes actually run."""
        return {
            "replica": serve.get_replica_context().replica_tag,
            "tile": {"height": TILE_SIZE, "width": TILE_SIZE, "channels": TILE_CHANNELS},
            "labels": list(LABELS),
            "checkpoint": self._checkpoint.describe() if self._checkpoint else None,
            "rollout": self._rollout.model_dump(mode="json") if self._rollout else None,
            "settings": self._settings.model_dump(mode="json"),
            "batching": self._batches.snapshot(),
        }

    @api.get("/")
    def info(self) -> dict[str, Any]:
        return self.describe()

    @api.post("/", openapi_extra=CLASSIFY_BODY, responses={200: {"model": ClassifyResponse}},
              response_class=JsonResponse)
    async def classify_tiles(self, request: Request) -> JsonResponse:
        """Tiles as JSON, one raw PNG body or multipart PNG parts (classifier/tile_request)."""
        settings = self._settings
        sources = await read_tiles(request, settings.max_tiles_per_request)
        require_at_most(
            len(sources), settings.max_tiles_per_request,
            field="tiles", setting="max_tiles_per_request", what="tiles",
        )
        require_budget(
            len(sources) * TILE_SIZE * TILE_SIZE, settings.max_request_pixels,
            unit="pixels", setting="max_request_pixels", field="tiles",
        )
        checkpoint = self._loaded()
        # PNG inflation is CPU work: off the event loop, like the forward pass.
        arrays = await asyncio.to_thread(decode_all, sources)
        probabilities = await self.classify(arrays)
        return JsonResponse({
            "probabilities": probabilities,
            "labels": [LABELS[int(p >= settings.threshold)] for p in probabilities],
            "threshold": settings.threshold,
            "checkpoint": checkpoint.describe(),
        })


# A function call rather than decorators, so mypy sees a Deployment, not the class.
TileClassifier: Deployment = serve.deployment(**TILE_CLASSIFIER.serve_options())(
    serve.ingress(api)(TileClassifierReplica)
)


def build_app(spec: ApplicationSpec = CLASSIFIER) -> Application:
    """The app with every deployment option taken from `spec`, e.g. one with overrides."""
    return TileClassifier.options(**spec.deployment(TileClassifier.name).serve_options()).bind()


app = build_app()
