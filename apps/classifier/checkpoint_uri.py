"""What a checkpoint URI may name, judged from the string alone: the config layer's check.

`ClassifierSettings` runs `check_checkpoint_uri` in a validator, so a stack naming an
unknown scheme, a `models://` path escaping the store or a `file://` path outside the
allowed roots fails before anything deploys (exit 2, with the field path). The replica
checks again after resolving symlinks (apps/classifier/checkpoint.py), which only it can.
No torch or Ray import here: the Pulumi program and the CLI import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from apps.model_source.uri import (
    REMOTE_SCHEMES,
    ModelUriError,
    file_path,
    is_remote,
    is_within,
    parse_remote,
)

BUILTIN_SCHEMES = ("file", "models", *REMOTE_SCHEMES)
"""Schemes every replica can read (remote ones through apps/model_source). A plugged-in
scheme (`register_scheme`) is only known inside the replica, so the config layer refuses it
until it is added here."""




CheckpointUriError = ModelUriError
"""A checkpoint URI that can never be served, whatever is on disk."""


def models_name(uri: str) -> str:
    """The file name a `models://name` URI refers to; refuses paths escaping the store."""
    parts = urlsplit(uri)
    if parts.scheme != "models":
        raise CheckpointUriError(f"{uri!r} is not a models:// URI")
    name = unquote(parts.netloc + parts.path)
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or parts.query or parts.fragment:
        raise CheckpointUriError(
            f"{uri!r}: a models:// URI names a file inside the model store, "
            "e.g. models://tile-classifier-v1.pt"
        )
    return name


def check_checkpoint_uri(uri: str, file_roots: Iterable[str]) -> None:
    """Raise CheckpointUriError when `uri` can be refused without reading anything."""
    scheme = urlsplit(uri).scheme
    if scheme not in BUILTIN_SCHEMES:
        raise CheckpointUriError(
            f"unknown checkpoint URI scheme {scheme!r} in {uri!r}; supported: "
            f"{', '.join(BUILTIN_SCHEMES)}"
        )
    if scheme == "models":
        models_name(uri)
        return
    if is_remote(uri):
        try:
            parse_remote(uri)
        except ModelUriError as error:
            raise CheckpointUriError(str(error)) from None
        return
    roots = tuple(file_roots)
    path = file_path(uri)
    if not is_within(path, roots):
        raise CheckpointUriError(
            f"{uri!r} is outside the allowed checkpoint directories {list(roots)}; "
            "add its directory to settings.file_roots or use models://"
        )
