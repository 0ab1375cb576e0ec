"""Default spec of the tile classifier app; importable without Ray or torch."""

from __future__ import annotations

from pydantic import ByteSize, Field, ValidationInfo, field_validator

from apps.classifier.checkpoint_uri import check_checkpoint_uri
from apps.model_source.uri import DEFAULT_FILE_ROOTS
from apps.quantity import Size
from apps.spec import ApplicationSpec, Autoscaling, Batching, DeploymentSpec, Resources, UserConfig

TILE_SIZE = 64
TILE_CHANNELS = 3


class ClassifierSettings(UserConfig):
    """Which checkpoint to serve and the request limits; a new URI reloads the model live."""

    file_roots: tuple[str, ...] = Field(
        DEFAULT_FILE_ROOTS,
        description="Directories a file:// checkpoint may live in (symlinks are resolved).",
    )
    checkpoint_uri: str = Field(
        "models://tile-classifier-v1.pt",
        description="Checkpoint to serve: models://name (the model store), file:///abs/path "
        "below file_roots, s3://bucket/key, gs://bucket/key, mlflow://models/<name>/<version> "
        "or mlflow://models/<name>@<alias> (docs/models.md); a new URI is loaded and verified, "
        "then swapped in (a failure keeps the old model).",
    )
    model_refresh: str = Field(
        "",
        description="Change it (e.g. to a date) to make replicas ask the store again without "
        "changing checkpoint_uri: picks up a moved MLflow alias or an overwritten object.",
    )
    max_checkpoint_bytes: Size = Field(
        ByteSize(256 * 1024**2), ge=1024,
        description="Larger checkpoint files are refused before they are read into memory.",
    )
    max_tiles_per_request: int = Field(
        64, ge=1, le=4096, description="More tiles in one request get 413."
    )
    max_request_pixels: int = Field(
        64 * TILE_SIZE * TILE_SIZE, ge=TILE_SIZE * TILE_SIZE,
        description=f"Work budget: tiles x {TILE_SIZE}x{TILE_SIZE} pixels above it get 413 "
        "before any tile is decoded or classified.",
    )
    threshold: float = Field(
        0.5, ge=0, le=1,
        description="A tile is labelled positive when its probability is at least this.",
    )
    max_request_bytes: Size = Field(
        ByteSize(8 * 1024**2),
        ge=1024,
        description="Larger HTTP bodies get 413 before parsing; a 64x64 array tile is ~60 KB.",
    )

    def model_uris(self) -> tuple[str, ...]:
        return (self.checkpoint_uri,)

    @field_validator("file_roots")
    @classmethod
    def _absolute_roots(cls, roots: tuple[str, ...]) -> tuple[str, ...]:
        for root in roots:
            if not root.startswith("/"):
                raise ValueError(f"{root!r} is not an absolute directory")
        return roots

    @field_validator("checkpoint_uri")
    @classmethod
    def _servable_uri(cls, uri: str, info: ValidationInfo) -> str:
        # The config layer refuses what no replica could ever load (exit 2 before deploying).
        check_checkpoint_uri(uri, info.data.get("file_roots", DEFAULT_FILE_ROOTS))
        return uri


# Defaults measured in benchmarks/RESULTS.md ("Analysis and chosen defaults"): one torch
# thread ("Threads per replica"); batches of 16 (as fast as 8 or 32 served, half the batch
# latency of 32) and no batch wait (a 10 ms wait doubled the lone-request p50, "Settings
# sweep"); max_ongoing_requests far above the batch (at the batch size throughput fell
# 98%); scale out at 8 in flight (Little's law on the "Open loop" runs).
TILE_CLASSIFIER = DeploymentSpec(
    name="TileClassifier",
    resources=Resources(num_cpus=1, memory=ByteSize(1024**3)),
    autoscaling=Autoscaling(
        min_replicas=1, max_replicas=2, target_ongoing_requests=8, upscale_delay_s=10
    ),
    max_ongoing_requests=64,
    max_queued_requests=512,
    batching=Batching(max_batch_size=16, batch_wait_timeout_s=0.0),
    user_config=ClassifierSettings(),
)

CLASSIFIER = ApplicationSpec(
    name="classifier",
    import_path="apps.classifier.app:app",
    route_prefix="/classify",
    deployments=(TILE_CLASSIFIER,),
    idempotent_paths=("/",),
)
