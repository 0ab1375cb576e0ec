"""An in-memory cosine-similarity index over unit vectors, in plain numpy.

Vectors are re-normalised on the way in, so cosine similarity is a single matrix-vector
product. Storage grows by doubling, so adding n documents costs amortised O(n) copies.
Documents are keyed by id: adding an existing id replaces its text and vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    score: float


@dataclass(frozen=True)
class AddOutcome:
    """What an add did; `accepted` is False when it would exceed the capacity (nothing added)."""

    accepted: bool
    added: int
    replaced: int
    total: int
    capacity: int


def _unit_rows(vectors: Matrix) -> Matrix:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Matrix = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return unit


class VectorStore:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._rows: dict[str, int] = {}
        self._vectors: Matrix = np.zeros((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def count_new(self, ids: Sequence[str]) -> int:
        return len(set(ids) - self._rows.keys())

    def add(
        self, ids: Sequence[str], texts: Sequence[str], vectors: Sequence[Sequence[float]],
        *, capacity: int,
    ) -> AddOutcome:
        """Upsert by id, all or nothing: refused whole if it would grow past `capacity`."""
        if not len(ids) == len(texts) == len(vectors):
            raise ValueError("ids, texts and vectors must have the same length")
        if len(set(ids)) != len(ids):
            raise ValueError("ids within one add must be unique")
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        new = self.count_new(ids)
        if len(self) + new > capacity:
            return AddOutcome(False, 0, 0, len(self), capacity)
        self._reserve(len(self) + new)
        unit = _unit_rows(matrix)
        for doc_id, text, vector in zip(ids, texts, unit, strict=True):
            row = self._rows.get(doc_id)
            if row is None:
                row = len(self._ids)
                self._rows[doc_id] = row
                self._ids.append(doc_id)
                self._texts.append(text)
            else:
                self._texts[row] = text
            self._vectors[row] = vector
        return AddOutcome(True, new, len(ids) - new, len(self), capacity)

    def _reserve(self, size: int) -> None:
        if size <= self._vectors.shape[0]:
            return
        grown = np.zeros((max(size, 2 * self._vectors.shape[0], 64), self.dim), dtype=np.float32)
        grown[: len(self)] = self._vectors[: len(self)]
        self._vectors = grown

    def search(self, vector: Sequence[float], top_k: int) -> list[Hit]:
        """The top_k most similar documents, best first; ties keep insertion order."""
        if not len(self) or top_k < 1:
            return []
        query = _unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, self.dim))[0]
        scores = self._vectors[: len(self)] @ query
        # A stable sort makes ties (duplicate texts) rank in insertion order, every time.
        ranked = np.argsort(-scores, kind="stable")[:top_k]
        return [Hit(self._ids[i], self._texts[i], float(scores[i])) for i in ranked]

    def clear(self) -> int:
        removed = len(self)
        self._ids, self._texts, self._rows = [], [], {}
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        return removed
