"""Fetch a remote model with the ecosystem's clients: s3fs, gcsfs (fsspec) and MLflow's.

A fetch has two steps, so the cache can decide between them: `describe` asks the store
what the URI names now (cheap metadata: object sizes, ETags/generations, the registry
version an alias points at) and `download` copies exactly that into a staging directory,
checking every object's size and, where the store records one, its MD5. Every failure is
a ModelSourceError naming the URI. Retries are few and timeouts short: a reconfigure that
cannot reach its store must fail in seconds, while the old model keeps serving.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.model_source.errors import ModelSourceError
from apps.model_source.uri import MlflowModelUri, ObjectStoreUri, parse_remote

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """One object of an artifact: where it sits in the artifact, and what the store says."""

    path: str
    size: int | None
    md5: str | None


@dataclass(frozen=True)
class RemoteArtifact:
    """What a URI names right now. `identity` changes whenever the content may have."""

    uri: str
    identity: str
    resolved: str
    """What the URI named at the store, for humans: `models:/name/3`, `s3://b/k` + ETag."""
    single_file: bool
    files: tuple[RemoteFile, ...]
    download: Callable[[Path], None]

    @property
    def size(self) -> int | None:
        sizes = [file.size for file in self.files]
        return None if any(size is None for size in sizes) else sum(s or 0 for s in sizes)


def describe(uri: str) -> RemoteArtifact:
    """Resolve `uri` at its store; raises ModelSourceError (missing, unreachable, refused)."""
    parsed = parse_remote(uri)
    try:
        if isinstance(parsed, MlflowModelUri):
            return _describe_mlflow(uri, parsed)
        return _describe_object_store(uri, parsed)
    except ModelSourceError:
        raise
    except Exception as error:  # the clients raise many types; all mean "cannot fetch"
        raise ModelSourceError(f"cannot fetch {uri!r}: {_brief(error)}") from None


def _brief(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:400]}" if text else type(error).__name__


# --- object stores (fsspec) -------------------------------------------------------------


def object_store_filesystem(scheme: str) -> Any:
    """A fresh filesystem (no listing cache: a reconfigure must see the store as it is now)."""
    if scheme == "s3":
        import s3fs

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return s3fs.S3FileSystem(
            skip_instance_cache=True, use_listings_cache=False,
            endpoint_url=endpoint or None,
            config_kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S,
                           "retries": {"max_attempts": 2}},
        )
    # Reads need none of gcsfs's zonal/HNS extras, whose bucket probe (gRPC) costs a round
    # trip per bucket and, where that API is absent, a 60 s timeout.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    # An emulator has no auth; elsewhere Google's default credentials (Workload Identity).
    token = "anon" if os.environ.get("STORAGE_EMULATOR_HOST") else None
    return gcsfs.GCSFileSystem(skip_instance_cache=True, use_listings_cache=False,
                               token=token, requests_timeout=READ_TIMEOUT_S)


def _store_md5(info: dict[str, Any]) -> str | None:
    """The object's MD5 as the store records it: a plain S3 ETag, or GCS's md5Hash."""
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if etag and "-" not in etag and len(etag) == 32:  # multipart ETags are not MD5s
        return etag.lower()
    md5_b64 = info.get("md5Hash")
    if md5_b64:
        return base64.b64decode(md5_b64).hex()
    return None


def _describe_object_store(uri: str, parsed: ObjectStoreUri) -> RemoteArtifact:
    fs = object_store_filesystem(parsed.scheme)
    path = f"{parsed.bucket}/{parsed.key}".rstrip("/")
    if not fs.exists(path):
        raise ModelSourceError(f"{uri!r}: no object or prefix at {parsed.scheme}://{path}")
    info = fs.info(path)
    if info.get("type") == "file":
        objects = {path: info}
        single = True
    else:
        objects = {name: detail for name, detail in fs.find(path, detail=True).items()
                   if detail.get("type") == "file"}
        single = False
        if not objects:
            raise ModelSourceError(f"{uri!r}: the prefix holds no objects")
    files = tuple(
        RemoteFile(
            path=posixpath.basename(name) if single else posixpath.relpath(name, path),
            size=int(detail["size"]),
            md5=_store_md5(detail),
        )
        for name, detail in sorted(objects.items())
    )
    versions = [
        f"{name}|{detail.get('size')}|{detail.get('ETag') or detail.get('etag')}|"
        f"{detail.get('generation') or detail.get('VersionId') or detail.get('LastModified')}"
        for name, detail in sorted(objects.items())
    ]
    identity = f"{parsed.scheme}://{path}\n" + "\n".join(versions)

    def download(staging: Path) -> None:
        for file in files:
            remote = path if single else f"{path}/{file.path}"
            local = staging / file.path
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local))
            _check_object(uri, file, local)

    etags = sorted({str(d.get("ETag") or d.get("generation") or "") for d in objects.values()})
    resolved = f"{parsed.scheme}://{path}" + (f" ({etags[0]})" if len(etags) == 1 else "")
    return RemoteArtifact(uri=uri, identity=identity, resolved=resolved, single_file=single,
                          files=files, download=download)


def _check_object(uri: str, file: RemoteFile, local: Path) -> None:
    """A short or altered download is never used: size and store MD5 must match."""
    size = local.stat().st_size
    if file.size is not None and size != file.size:
        raise ModelSourceError(
            f"{uri!r}: {file.path} arrived with {size} bytes, the store lists {file.size}"
        )
    if file.md5 is not None:
        digest = hashlib.md5(usedforsecurity=False)
        with local.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != file.md5:
            raise ModelSourceError(
                f"{uri!r}: checksum mismatch for {file.path} (store MD5 {file.md5}, "
                f"downloaded {digest.hexdigest()})"
            )


# --- MLflow model registry ----------------------------------------------------------------


def _describe_mlflow(uri: str, parsed: MlflowModelUri) -> RemoteArtifact:
    # Fail in seconds, not after MLflow's default minutes of backoff (set before import).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(READ_TIMEOUT_S))
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking_uri = mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if parsed.alias is not None:
            version = client.get_model_version_by_alias(parsed.name, parsed.alias)
        else:
            version = client.get_model_version(parsed.name, str(parsed.version))
    except MlflowException as error:
        raise ModelSourceError(
            f"{uri!r}: the MLflow registry at {tracking_uri} has no such model version "
            f"({error.error_code}: {' '.join(error.message.split())[:300]})"
        ) from None
    pinned = f"models:/{parsed.name}/{version.version}"

    def download(staging: Path) -> None:
        mlflow.artifacts.download_artifacts(
            artifact_uri=pinned, dst_path=str(staging), tracking_uri=tracking_uri
        )

    # A registry version's source never changes: name + version pin the content.
    identity = f"mlflow {tracking_uri} {pinned} {version.source}"
    return RemoteArtifact(uri=uri, identity=identity, resolved=pinned, single_file=False,
                          files=(RemoteFile(path=".", size=None, md5=None),),
                          download=download)
