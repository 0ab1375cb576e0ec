"""The model store behind `models://` URIs: a directory of checkpoint files, no torch needed.

Locally it is `<repo>/models` (where `servestack model build` writes); in an image or a pod,
point $SERVESTACK_MODEL_STORE at wherever the checkpoints are baked in or mounted.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import apps
from apps.classifier.spec import ClassifierSettings

MODEL_STORE_ENV = "SERVESTACK_MODEL_STORE"


class ModelStoreError(ValueError):
    """A models:// URI that cannot name a file inside the store."""


def model_store() -> Path:
    """Directory behind `models://`: $SERVESTACK_MODEL_STORE, else `<repo>/models`."""
    configured = os.environ.get(MODEL_STORE_ENV)
    if configured:
        return Path(configured)
    return Path(apps.__file__).resolve().parent.parent / "models"


def model_store_name(uri: str) -> str:
    """The file name a `models://name` URI refers to; refuses paths escaping the store."""
    parts = urlsplit(uri)
    if parts.scheme != "models":
        raise ModelStoreError(f"{uri!r} is not a models:// URI")
    name = unquote(parts.netloc + parts.path)
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or parts.query or parts.fragment:
        raise ModelStoreError(
            f"{uri!r}: a models:// URI names a file inside the model store, "
            "e.g. models://tile-classifier-v1.pt"
        )
    return name


def default_checkpoint_name() -> str:
    """The file the default `checkpoint_uri` points at: what `servestack model build` writes."""
    return model_store_name(str(ClassifierSettings.model_fields["checkpoint_uri"].default))


def default_checkpoint_path() -> Path:
    return model_store() / default_checkpoint_name()
