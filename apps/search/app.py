"""The search application: a FastAPI ingress composing the Embedder and a vector index.

    POST   /search/documents        {"documents": [{"id", "text"}, ...]}  → added/replaced/total
    POST   /search/query            {"query": str, "top_k": int}          → ranked hits
    GET    /search/documents/count                                        → count and capacity
    DELETE /search/documents                                              → deleted count
    GET    /search                                                        → live limits

SearchIngress holds DeploymentHandles to an Embedder (the embeddings app's class, bound
with this app's spec) and to VectorIndex, one replica holding the documents in memory.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.handle import DeploymentHandle

from apps.embeddings.app import EmbedderReplica
from apps.embeddings.spec import EMBEDDER, EMBEDDING_DIM
from apps.http_contract import (
    ApiError,
    Text,
    install_error_contract,
    require_at_most,
    require_budget,
    require_texts_within,
)
from apps.json_io import JsonResponse, openapi_body, parse_json_body
from apps.search.index import AddOutcome, Hit, VectorStore
from apps.search.spec import SEARCH, SEARCH_INGRESS, VECTOR_INDEX, IndexSettings, IngressSettings
from apps.spec import ApplicationSpec, ReplicaUserConfig


class VectorIndexReplica:
    """The index deployment. Methods are `async` on purpose: they run one at a time on the
    replica's event loop, so the store needs no lock (plain `def`s would run in a pool)."""

    def __init__(self) -> None:
        self._store = VectorStore(EMBEDDING_DIM)
        self._settings = IndexSettings()

    def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        """A lower max_documents keeps what is stored and refuses new ids until under it."""
        _, self._settings = ReplicaUserConfig.parse(user_config, IndexSettings)

    async def add(
        self, ids: list[str], texts: list[str], vectors: list[list[float]]
    ) -> AddOutcome:
        return self._store.add(ids, texts, vectors, capacity=self._settings.max_documents)

    async def query(self, vector: list[float], top_k: int) -> list[Hit]:
        return self._store.search(vector, top_k)

    async def count(self) -> dict[str, int]:
        return {"count": len(self._store), "max_documents": self._settings.max_documents}

    async def clear(self) -> int:
        return self._store.clear()


VectorIndex: Deployment = serve.deployment(**VECTOR_INDEX.serve_options())(VectorIndexReplica)


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Text = Field(min_length=1, max_length=256)
    text: Text


class AddDocumentsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)

    @field_validator("documents")
    @classmethod
    def _unique_ids(cls, documents: list[DocumentIn]) -> list[DocumentIn]:
        seen: set[str] = set()
        for document in documents:
            if document.id in seen:
                raise ValueError(f"document id {document.id!r} appears twice in one request")
            seen.add(document.id)
        return documents


class AddDocumentsResponse(BaseModel):
    added: int = Field(description="New ids stored.")
    replaced: int = Field(description="Existing ids whose text and vector were replaced.")
    total: int


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Text = Field(min_length=1)
    top_k: int = Field(5, ge=1, strict=True)


class HitOut(BaseModel):
    id: str
    text: str
    score: float = Field(description="Cosine similarity in [-1, 1].")


class QueryResponse(BaseModel):
    query: str
    hits: list[HitOut]


api = install_error_contract(
    FastAPI(title="servestack search", description=__doc__, docs_url=None, redoc_url=None)
)


class SearchIngressReplica:
    """The HTTP face of the app; validates, enforces live limits, fans out over handles."""

    def __init__(self, embedder: DeploymentHandle[Any], index: DeploymentHandle[Any]) -> None:
        self._embedder = embedder
        self._index = index
        self._settings = IngressSettings()

    def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        _, self._settings = ReplicaUserConfig.parse(user_config, IngressSettings)

    @property
    def max_request_bytes(self) -> int:
        return int(self._settings.max_request_bytes)

    @api.get("/")
    def info(self) -> dict[str, Any]:
        return {"settings": self._settings.model_dump(mode="json")}

    @api.post("/documents", openapi_extra=openapi_body(AddDocumentsRequest),
              responses={200: {"model": AddDocumentsResponse}}, response_class=JsonResponse)
    async def add_documents(self, http_request: Request) -> JsonResponse:
        request = await parse_json_body(http_request, AddDocumentsRequest)
        settings = self._settings
        require_at_most(
            len(request.documents), settings.max_documents_per_request,
            field="documents", setting="max_documents_per_request", what="documents",
        )
        texts = [document.text for document in request.documents]
        require_texts_within(
            texts, settings.max_text_chars,
            field_template="documents.{index}.text", setting="max_text_chars",
        )
        require_budget(
            sum(len(text) for text in texts), settings.max_request_chars,
            unit="characters", setting="max_request_chars", field="documents",
        )
        vectors = await self._embedder.embed.remote(texts)
        ids = [document.id for document in request.documents]
        outcome: AddOutcome = await self._index.add.remote(ids, texts, vectors)
        if not outcome.accepted:
            raise ApiError(
                409,
                "index_full",
                f"the index holds {outcome.total} of at most {outcome.capacity} documents and "
                "this request would exceed it (VectorIndex user_config settings.max_documents); "
                "delete documents or raise the limit",
                field="documents",
            )
        return JsonResponse({"added": outcome.added, "replaced": outcome.replaced,
                             "total": outcome.total})

    @api.post("/query", openapi_extra=openapi_body(QueryRequest),
              responses={200: {"model": QueryResponse}}, response_class=JsonResponse)
    async def query(self, http_request: Request) -> JsonResponse:
        request = await parse_json_body(http_request, QueryRequest)
        settings = self._settings
        if request.top_k > settings.max_top_k:
            raise ApiError(
                422, "invalid_request",
                f"{request.top_k} is above the maximum {settings.max_top_k} "
                "(user_config settings.max_top_k)",
                field="top_k",
            )
        require_at_most(
            len(request.query), settings.max_text_chars,
            field="query", setting="max_text_chars", what="characters",
        )
        require_budget(
            len(request.query), settings.max_request_chars,
            unit="characters", setting="max_request_chars", field="query",
        )
        [vector] = await self._embedder.embed.remote([request.query])
        hits: list[Hit] = await self._index.query.remote(vector, request.top_k)
        return JsonResponse({"query": request.query, "hits": [
            {"id": hit.id, "text": hit.text, "score": hit.score} for hit in hits]})

    @api.get("/documents/count")
    async def count(self) -> dict[str, int]:
        counts: dict[str, int] = await self._index.count.remote()
        return counts

    @api.delete("/documents")
    async def clear(self) -> dict[str, int]:
        deleted: int = await self._index.clear.remote()
        return {"deleted": deleted}


SearchIngress: Deployment = serve.deployment(**SEARCH_INGRESS.serve_options())(
    serve.ingress(api)(SearchIngressReplica)
)

# The embeddings app's model class, deployed here without its HTTP layer (Ray allows one
# FastAPI deployment per app) and with this app's spec for it.
Embedder: Deployment = serve.deployment(**SEARCH.deployment(EMBEDDER.name).serve_options())(
    EmbedderReplica
)


def build_app(spec: ApplicationSpec = SEARCH) -> Application:
    """The composed app with every deployment option taken from `spec` (e.g. overridden)."""

    def configured(deployment: Deployment) -> Deployment:
        return deployment.options(**spec.deployment(deployment.name).serve_options())

    return configured(SearchIngress).bind(
        configured(Embedder).bind(), configured(VectorIndex).bind()
    )


app = build_app()
