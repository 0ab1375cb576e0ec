"""The embeddings application: `POST /embed {"texts": [...]}` → L2-normalised 384-d vectors.

Every text of every request goes through one batch queue (apps/batching.py), so concurrent requests
share forward passes. Deployment options, batching and limits all come from `EMBEDDER`.

Two layers, because Ray allows one FastAPI deployment per application: `EmbedderReplica`
is the model (handle methods `embed`, `describe`), which the search app binds as its own
non-HTTP Embedder; `EmbedderHttpReplica` adds the routes for this app's ingress.

The encoder is the bundled one unless `settings.model_uri` names another; reconfigure
loads and verifies a new one before swapping it in. As in the classifier (apps/rollout.py),
a failed update on a replica that already serves keeps the old encoder and every old
setting, and shows under `rollout` in `GET /embed/`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application, Deployment

from apps.batching import AdaptiveBatcher, BatchRecorder, spec_batching
from apps.embeddings.encoder import LoadedEncoder, encode, load_encoder_from
from apps.embeddings.spec import EMBEDDER, EMBEDDING_DIM, EMBEDDINGS, EmbedderSettings
from apps.http_contract import (
    Text,
    install_error_contract,
    require_at_most,
    require_budget,
    require_texts_within,
)
from apps.json_io import JsonResponse, openapi_body, parse_json_body
from apps.model_source.errors import ModelSourceError
from apps.model_source.uri import is_remote
from apps.rollout import RolloutReport
from apps.spec import ApplicationSpec, ReplicaUserConfig, SpecError


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(min_length=1, description="Texts to embed, in order.")


class EmbedResponse(BaseModel):
    """What POST /embed answers (documentation: the route writes the dict with orjson)."""

    embeddings: list[list[float]]
    dim: int
    model: str


api = install_error_contract(
    FastAPI(title="servestack embeddings", description=__doc__, docs_url=None, redoc_url=None)
)


class EmbedderReplica:
    """The model behind a DeploymentHandle: batching, live settings, no HTTP."""

    def __init__(self) -> None:
        self._encoder: LoadedEncoder | None = None
        self._rollout: RolloutReport | None = None
        self._settings = EmbedderSettings()
        self._batches = BatchRecorder(spec_batching(EMBEDDER))
        self._batcher = AdaptiveBatcher(self._encode_batch, spec_batching(EMBEDDER))

    def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        """Parse, then load the encoder if its URI changed (remote: ask again), then swap.

        Never half-applied: a failure raises only while no encoder is loaded; afterwards
        the old encoder and settings stay and the failure is reported under `rollout`."""
        try:
            batching, settings = ReplicaUserConfig.parse(user_config, EmbedderSettings)
            encoder = self._encoder
            uri = settings.model_uri
            if encoder is None or encoder.uri != uri or (uri is not None and is_remote(uri)):
                encoder = load_encoder_from(
                    uri, int(settings.max_model_bytes), settings.file_roots
                )
        except (SpecError, ModelSourceError) as error:
            if self._encoder is None:
                raise
            self._rollout = RolloutReport.refused(
                user_config, "model_uri", error, self._encoder.describe())
            return
        self._batches.apply(self._batcher, batching)
        self._encoder = encoder
        self._settings = settings
        self._rollout = RolloutReport(status="applied", requested=uri,
                                      serving=encoder.describe())

    def _loaded(self) -> LoadedEncoder:
        if self._encoder is None:  # a deployment bound without user_config: the default
            self._encoder = load_encoder_from(None, 0, ())
        return self._encoder

    async def _encode_batch(self, texts: list[str]) -> list[list[float]]:
        self._batches.record(len(texts))
        # Off the event loop: health checks and new requests keep flowing during a pass.
        return await asyncio.to_thread(encode, self._loaded().model, texts)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Handle entry point for other deployments; each text joins the shared batch queue."""
        return list(await asyncio.gather(*(self._batcher.submit(text) for text in texts)))

    def describe(self) -> dict[str, Any]:
        """Model, live limits and batching, including the batch sizes actually run."""
        return {
            "replica": serve.get_replica_context().replica_tag,
            "model": self._loaded().describe()["name"],
            "source": self._loaded().describe(),
            "rollout": self._rollout.model_dump(mode="json") if self._rollout else None,
            "dim": EMBEDDING_DIM,
            "settings": self._settings.model_dump(mode="json"),
            "batching": self._batches.snapshot(),
        }


class EmbedderHttpReplica(EmbedderReplica):
    """The embeddings app's ingress: the model plus its HTTP routes and error contract."""

    @property
    def max_request_bytes(self) -> int:
        return int(self._settings.max_request_bytes)

    @api.get("/")
    def info(self) -> dict[str, Any]:
        return self.describe()

    @api.post("/", openapi_extra=openapi_body(EmbedRequest),
              responses={200: {"model": EmbedResponse}}, response_class=JsonResponse)
    async def embed_texts(self, http_request: Request) -> JsonResponse:
        request = await parse_json_body(http_request, EmbedRequest)
        settings = self._settings
        require_at_most(
            len(request.texts), settings.max_texts_per_request,
            field="texts", setting="max_texts_per_request", what="texts",
        )
        require_texts_within(
            request.texts, settings.max_text_chars,
            field_template="texts.{index}", setting="max_text_chars",
        )
        require_budget(
            sum(len(text) for text in request.texts), settings.max_request_chars,
            unit="characters", setting="max_request_chars", field="texts",
        )
        vectors = await self.embed(request.texts)
        return JsonResponse({"embeddings": vectors, "dim": EMBEDDING_DIM,
                             "model": self._loaded().describe()["name"]})


# A function call rather than decorators, so mypy sees a Deployment, not the class.
Embedder: Deployment = serve.deployment(**EMBEDDER.serve_options())(
    serve.ingress(api)(EmbedderHttpReplica)
)


def build_app(spec: ApplicationSpec = EMBEDDINGS) -> Application:
    """The app with every deployment option taken from `spec`, e.g. one with overrides."""
    return Embedder.options(**spec.deployment(Embedder.name).serve_options()).bind()


app = build_app()
