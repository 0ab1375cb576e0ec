"""The model store behind `models://` URIs: a directory of checkpoint files, no torch needed.

Locally it is `<repo>/models` (where `servestack model build` writes); in an image or a pod,
point $SERVESTACK_MODEL_STORE at wherever the checkpoints are baked in or mounted.
"""

from __future__ import annotations

import os
from pathlib import Path

import apps
from apps.classifier.checkpoint_uri import models_name
from apps.classifier.spec import ClassifierSettings

MODEL_STORE_ENV = "SERVESTACK_MODEL_STORE"


def model_store() -> Path:
    """Directory behind `models://`: $SERVESTACK_MODEL_STORE, else `<repo>/models`."""
    configured = os.environ.get(MODEL_STORE_ENV)
    if configured:
        return Path(configured)
    return Path(apps.__file__).resolve().parent.parent / "models"


def default_checkpoint_name() -> str:
    """The file the default `checkpoint_uri` points at: what `servestack model build` writes."""
    return models_name(str(ClassifierSettings.model_fields["checkpoint_uri"].default))


def default_checkpoint_path() -> Path:
    return model_store() / default_checkpoint_name()
