"""The stack's `model_sources`: object stores and MLflow the apps' models come from."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ByteSize, Field, model_validator

from apps.quantity import Memory
from apps.spec import SpecModel
from infra.config.secret_keys import NamesSecret
from infra.field_types import Cidr, DnsSubdomain, HttpUrl

MLFLOW_TOKEN_MEANING = "the MLflow tracking token"


class ModelCacheVolume(SpecModel):
    """The per-node model cache every Ray pod mounts (apps/model_source/cache.py)."""

    volume: Literal["emptyDir", "hostPath", "persistentVolumeClaim"] = Field(
        "emptyDir", description="emptyDir: per pod, counted as ephemeral storage; hostPath: "
        "shared by every pod on the node; persistentVolumeClaim: an existing (ReadWriteMany) "
        "claim shared by all pods.",
    )
    size: Memory = Field(
        ByteSize(20 * 1024**3), ge=1024**3,
        description="The volume's size (emptyDir sizeLimit and ephemeral-storage request); the "
        "cache keeps at most half of it, the rest is room for a download in progress.",
    )
    host_path: str | None = Field(
        None, pattern=r"^/[^\s]*$", description="Node directory, for volume hostPath.")
    claim_name: DnsSubdomain | None = Field(
        None, description="Existing claim, for volume persistentVolumeClaim.")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.volume == "hostPath" and not self.host_path:
            raise ValueError("volume hostPath needs host_path")
        if self.volume == "persistentVolumeClaim" and not self.claim_name:
            raise ValueError("volume persistentVolumeClaim needs claim_name")
        return self


class ModelSourcesConfig(SpecModel):
    """Where the apps' s3://, gs:// and mlflow:// models come from (docs/models.md). The
    buckets themselves are read from the apps' model URIs, never repeated here."""

    s3_endpoint: HttpUrl = Field(
        None, description="An S3-compatible endpoint (AWS_ENDPOINT_URL_S3); null: AWS S3.")
    s3_credentials_secret: DnsSubdomain | None = Field(
        None,
        description="Existing Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, for an "
        "S3-compatible endpoint; on EKS, AWS S3 is read through Pod Identity instead.",
    )
    object_store_cidrs: tuple[Cidr, ...] = Field(
        (), description="Addresses of the object store (S3 endpoint or GCS), the only egress "
        "the NetworkPolicies give Ray pods for it.",
    )
    mlflow_tracking_uri: HttpUrl = Field(
        None, description="MLflow tracking/registry server that mlflow:// URIs resolve against.")
    mlflow_cidrs: tuple[Cidr, ...] = Field(
        (), description="Addresses of the MLflow server (its artifacts are proxied by it).")
    mlflow_token_secret_key: Annotated[str | None, NamesSecret(MLFLOW_TOKEN_MEANING)] = Field(
        None, description="Name of the secret Pulumi config key holding MLflow's token.")
    cache: ModelCacheVolume = Field(ModelCacheVolume(), description="The per-node model cache.")

