"""Model URIs judged from the string alone: what the config layer can refuse before deploying.

No client import here (fsspec, mlflow): the Pulumi program and the CLI import it, and infra
derives the buckets a stack reads (for identity and egress) from the same parse.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

REMOTE_SCHEMES = ("gs", "mlflow", "s3")
DEFAULT_FILE_ROOTS = ("/mnt/models",)
"""Where `file://` models may live unless a stack allows other directories."""
"""Schemes fetched over the network into the node's model cache."""

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
_MLFLOW_NAME = r"[A-Za-z0-9][A-Za-z0-9._ -]{0,254}"
_MLFLOW_PATH = re.compile(
    rf"/(?P<name>{_MLFLOW_NAME})(?:/(?P<version>[1-9][0-9]*)|@(?P<alias>[A-Za-z0-9_-]+))"
)


class ModelUriError(ValueError):
    """A model URI that can never be served, whatever the store holds."""


@dataclass(frozen=True)
class ObjectStoreUri:
    """`s3://bucket/key` or `gs://bucket/key`: one object, or every object below a prefix."""

    scheme: Literal["s3", "gs"]
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class MlflowModelUri:
    """`mlflow://models/<name>/<version>` or `mlflow://models/<name>@<alias>`."""

    name: str
    version: str | None
    alias: str | None

    @property
    def registry_uri(self) -> str:
        """The same model in MLflow's own `models:/` syntax."""
        return f"models:/{self.name}/{self.version}" if self.version else \
            f"models:/{self.name}@{self.alias}"

    def __str__(self) -> str:
        tail = f"/{self.version}" if self.version else f"@{self.alias}"
        return f"mlflow://models/{self.name}{tail}"


RemoteModelUri = ObjectStoreUri | MlflowModelUri


def parse_remote(uri: str) -> RemoteModelUri:
    """Parse an s3://, gs:// or mlflow:// URI; ModelUriError says what a valid one looks like."""
    parts = urlsplit(uri)
    if parts.query or parts.fragment:
        raise ModelUriError(f"{uri!r}: a model URI has no query or fragment")
    if parts.scheme in ("s3", "gs"):
        key = parts.path.lstrip("/")
        if not _BUCKET.fullmatch(parts.netloc) or not key or ".." in key.split("/"):
            raise ModelUriError(
                f"{uri!r}: expected {parts.scheme}://<bucket>/<key> (a lower-case bucket name "
                f"and an object key or prefix, e.g. {parts.scheme}://models/classifier/v1.pt)"
            )
        scheme: Literal["s3", "gs"] = "s3" if parts.scheme == "s3" else "gs"
        return ObjectStoreUri(scheme=scheme, bucket=parts.netloc, key=key)
    if parts.scheme == "mlflow":
        match = _MLFLOW_PATH.fullmatch(parts.path)
        if parts.netloc != "models" or match is None:
            raise ModelUriError(
                f"{uri!r}: expected mlflow://models/<name>/<version> or "
                "mlflow://models/<name>@<alias> (a registered model of the stack's MLflow)"
            )
        return MlflowModelUri(
            name=match["name"], version=match["version"], alias=match["alias"]
        )
    raise ModelUriError(
        f"{uri!r} is not a remote model URI; supported: {', '.join(REMOTE_SCHEMES)}"
    )


def file_path(uri: str) -> str:
    """The absolute, normalised path of a `file://` URI (no `..` left in it)."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/") or parts.query \
            or parts.fragment:
        raise ModelUriError(
            f"{uri!r}: file URIs need an absolute path, e.g. file:///mnt/models/x.pt"
        )
    return posixpath.normpath(path)


def is_within(path: str, roots: Iterable[str]) -> bool:
    """True when `path` is one of `roots` or below one (both already absolute, normalised)."""
    return any(
        path == root or path.startswith(root.rstrip("/") + "/")
        for root in (posixpath.normpath(r) for r in roots)
    )


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme in REMOTE_SCHEMES


def object_store_uris(uris: list[str] | tuple[str, ...]) -> tuple[ObjectStoreUri, ...]:
    """The s3:// and gs:// URIs among `uris`, parsed, sorted (what infra grants access to)."""
    found = {parsed for uri in uris if is_remote(uri)
             for parsed in [parse_remote(uri)] if isinstance(parsed, ObjectStoreUri)}
    return tuple(sorted(found, key=str))


def check_model_uri(uri: str, file_roots: Iterable[str]) -> None:
    """Refuse a remote or file:// model URI that can never be served (ModelUriError)."""
    if is_remote(uri):
        parse_remote(uri)
        return
    if urlsplit(uri).scheme != "file":
        raise ModelUriError(
            f"unknown model URI scheme {urlsplit(uri).scheme!r} in {uri!r}; supported: "
            f"{', '.join(('file', *REMOTE_SCHEMES))}"
        )
    roots = tuple(file_roots)
    if not is_within(file_path(uri), roots):
        raise ModelUriError(
            f"{uri!r} is outside the allowed model directories {list(roots)}; add its "
            "directory to settings.file_roots"
        )
