"""Default spec of the search app; importable without Ray or torch."""

from __future__ import annotations

from pydantic import ByteSize, Field

from apps.embeddings.spec import EMBEDDER
from apps.quantity import Size
from apps.spec import ApplicationSpec, DeploymentSpec, Resources, UserConfig


class IndexSettings(UserConfig):
    """Bounds the in-memory index so one tenant cannot exhaust the replica's memory."""

    max_documents: int = Field(
        100_000, ge=1,
        description="An add that would exceed it gets 409 index_full; lowering it keeps the "
        "stored documents and refuses new ids until the index is back under it.",
    )


class IngressSettings(UserConfig):
    """Request limits of the search ingress, tunable live through reconfigure."""

    max_top_k: int = Field(50, ge=1, le=1000, description="A larger query top_k gets 422.")
    max_documents_per_request: int = Field(
        64, ge=1, le=4096, description="More documents in one add request get 413."
    )
    max_text_chars: int = Field(
        2000, ge=1, le=100_000, description="A longer document text or query gets 413."
    )
    max_request_chars: int = Field(
        4096, ge=1, le=1_000_000,
        description="Work budget: an add whose texts (or a query) total more characters gets "
        "413 before anything is embedded.",
    )
    max_request_bytes: Size = Field(
        ByteSize(2 * 1024**2), ge=1024, description="Larger HTTP bodies get 413 before parsing."
    )


VECTOR_INDEX = DeploymentSpec(
    name="VectorIndex",
    # One replica: the index lives in this process's memory, so replicas would disagree.
    num_replicas=1,
    resources=Resources(num_cpus=0.5, memory=ByteSize(512 * 1024**2)),
    max_ongoing_requests=32,
    user_config=IndexSettings(),
)

SEARCH_INGRESS = DeploymentSpec(
    name="SearchIngress",
    num_replicas=1,
    resources=Resources(num_cpus=0.25, memory=ByteSize(256 * 1024**2)),
    max_ongoing_requests=64,
    user_config=IngressSettings(),
)

SEARCH = ApplicationSpec(
    name="search",
    import_path="apps.search.app:app",
    route_prefix="/search",
    deployments=(SEARCH_INGRESS, EMBEDDER, VECTOR_INDEX),
    idempotent_paths=("/query",),
)
