"""Default spec of the embeddings app; importable without Ray or torch."""

from __future__ import annotations

from pydantic import ByteSize, Field, ValidationInfo, field_validator

from apps.model_source.uri import DEFAULT_FILE_ROOTS, ModelUriError, check_model_uri
from apps.quantity import Size
from apps.spec import ApplicationSpec, Autoscaling, Batching, DeploymentSpec, Resources, UserConfig

EMBEDDING_DIM = 384


class EmbedderSettings(UserConfig):
    """The encoder to serve and the request limits, tunable live through reconfigure."""

    max_texts_per_request: int = Field(
        64, ge=1, le=4096, description="More texts in one request get 413."
    )
    max_text_chars: int = Field(
        2000, ge=1, le=100_000, description="A longer text gets 413 naming `texts.<i>`."
    )
    max_request_chars: int = Field(
        4096, ge=1, le=1_000_000,
        description="Work budget: a request whose texts total more characters gets 413 before "
        "the model runs (a character costs at most one token; see docs/security.md).",
    )
    max_request_bytes: Size = Field(
        ByteSize(1024**2), ge=1024, description="Larger HTTP bodies get 413 before parsing."
    )
    file_roots: tuple[str, ...] = Field(
        DEFAULT_FILE_ROOTS,
        description="Directories a file:// model may live in (symlinks are resolved).",
    )
    model_uri: str | None = Field(
        None,
        description="A sentence-transformers model directory to serve instead of the bundled "
        "all-MiniLM-L6-v2 (null): s3://bucket/prefix, gs://bucket/prefix, "
        "mlflow://models/<name>/<version>, mlflow://models/<name>@<alias> or file:///dir "
        "below file_roots (docs/models.md). A new URI is loaded and verified, then swapped in; "
        "a failure keeps the old model.",
    )
    model_refresh: str = Field(
        "",
        description="Change it to make replicas ask the store again without changing "
        "model_uri: picks up a moved MLflow alias or overwritten objects.",
    )
    max_model_bytes: Size = Field(
        ByteSize(1024**3), ge=1024,
        description="A larger model (all its files) is refused before it is loaded.",
    )

    def model_uris(self) -> tuple[str, ...]:
        return (self.model_uri,) if self.model_uri else ()

    @field_validator("model_uri")
    @classmethod
    def _servable_uri(cls, uri: str | None, info: ValidationInfo) -> str | None:
        if uri is not None:
            try:
                check_model_uri(uri, info.data.get("file_roots", DEFAULT_FILE_ROOTS))
            except ModelUriError as error:
                raise ValueError(str(error)) from None
        return uri


# Defaults measured in benchmarks/RESULTS.md ("Analysis and chosen defaults"): one torch
# thread per replica (2 bought nothing served on 2 cores and collapsed under contention,
# "Threads per replica"); batches of 8 (as fast as 32 served, a quarter of its batch
# latency); no batch wait: apps/batching.py forms a batch only when the model is free, so
# busy batches fill while the previous pass runs and a lone request pays no wait (Ray's
# @serve.batch needed 10 ms, without which it lost 21-41% of the throughput; docs/benchmarks.md
# "Batching");
# max_ongoing_requests far above the batch (at the batch size throughput fell 93%,
# "Settings sweep"); scale out at 8 in flight (Little's law on the "Open loop" runs).
EMBEDDER = DeploymentSpec(
    name="Embedder",
    resources=Resources(num_cpus=1, memory=ByteSize(1024**3)),
    autoscaling=Autoscaling(
        min_replicas=1, max_replicas=2, target_ongoing_requests=8, upscale_delay_s=10
    ),
    max_ongoing_requests=64,
    max_queued_requests=512,
    batching=Batching(max_batch_size=8, batch_wait_timeout_s=0.0),
    user_config=EmbedderSettings(),
)

EMBEDDINGS = ApplicationSpec(
    name="embeddings",
    import_path="apps.embeddings.app:app",
    route_prefix="/embed",
    deployments=(EMBEDDER,),
    idempotent_paths=("/",),
)
