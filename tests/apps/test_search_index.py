"""The vector store: cosine ranking, upserts by id, and an all-or-nothing capacity."""

from __future__ import annotations

import numpy as np
import pytest

from apps.search.index import VectorStore


def _basis(i: int, dim: int = 4) -> list[float]:
    vector = [0.0] * dim
    vector[i] = 1.0
    return vector


def test_ranks_by_cosine_similarity_best_first() -> None:
    store = VectorStore(dim=4)
    store.add(["x", "y", "xy"], ["X", "Y", "XY"], [_basis(0), _basis(1), [1, 1, 0, 0]], capacity=10)
    hits = store.search([1.0, 0.2, 0.0, 0.0], top_k=3)
    assert [hit.id for hit in hits] == ["x", "xy", "y"]
    assert hits[0].score == pytest.approx(1 / np.sqrt(1.04), rel=1e-6)
    assert [hit.text for hit in hits] == ["X", "XY", "Y"]


def test_unnormalised_vectors_are_normalised_on_the_way_in() -> None:
    store = VectorStore(dim=4)
    store.add(["long"], ["L"], [[10.0, 0.0, 0.0, 0.0]], capacity=10)
    [hit] = store.search([0.5, 0.0, 0.0, 0.0], top_k=1)
    assert hit.score == pytest.approx(1.0)


def test_top_k_larger_than_the_store_returns_everything() -> None:
    store = VectorStore(dim=4)
    store.add(["a"], ["A"], [_basis(0)], capacity=10)
    assert [hit.id for hit in store.search(_basis(0), top_k=50)] == ["a"]
    assert VectorStore(dim=4).search(_basis(0), top_k=5) == []


def test_ties_rank_in_insertion_order() -> None:
    store = VectorStore(dim=4)
    ids = [f"d{i}" for i in range(20)]
    store.add(ids, ids, [_basis(2)] * 20, capacity=100)
    assert [hit.id for hit in store.search(_basis(2), top_k=5)] == ids[:5]


def test_adding_an_existing_id_replaces_it() -> None:
    store = VectorStore(dim=4)
    store.add(["a", "b"], ["old", "B"], [_basis(0), _basis(1)], capacity=10)
    outcome = store.add(["a", "c"], ["new", "C"], [_basis(3), _basis(2)], capacity=10)
    assert (outcome.added, outcome.replaced, outcome.total) == (1, 1, 3)
    [hit] = store.search(_basis(3), top_k=1)
    assert (hit.id, hit.text) == ("a", "new")


def test_an_add_past_capacity_is_refused_whole() -> None:
    store = VectorStore(dim=4)
    store.add(["a", "b"], ["A", "B"], [_basis(0), _basis(1)], capacity=3)
    outcome = store.add(["c", "d"], ["C", "D"], [_basis(2), _basis(3)], capacity=3)
    assert not outcome.accepted
    assert (outcome.total, outcome.capacity) == (2, 3)
    assert len(store) == 2
    replacing = store.add(["a", "c"], ["A2", "C"], [_basis(0), _basis(2)], capacity=3)
    assert replacing.accepted and replacing.total == 3


def test_grows_past_its_initial_allocation() -> None:
    store = VectorStore(dim=8)
    rng = np.random.default_rng(0)
    for batch in range(5):
        ids = [f"{batch}-{i}" for i in range(50)]
        store.add(ids, ids, rng.normal(size=(50, 8)).tolist(), capacity=1000)
    assert len(store) == 250
    target = rng.normal(size=8)
    store.add(["needle"], ["needle"], [target.tolist()], capacity=1000)
    assert store.search(target.tolist(), top_k=1)[0].id == "needle"


def test_clear_empties_the_store() -> None:
    store = VectorStore(dim=4)
    store.add(["a"], ["A"], [_basis(0)], capacity=10)
    assert store.clear() == 1
    assert len(store) == 0
    assert store.search(_basis(0), top_k=3) == []


def test_mismatched_inputs_are_programming_errors() -> None:
    store = VectorStore(dim=4)
    with pytest.raises(ValueError, match="same length"):
        store.add(["a", "b"], ["A"], [_basis(0)], capacity=10)
    with pytest.raises(ValueError, match="unique"):
        store.add(["a", "a"], ["A", "A"], [_basis(0), _basis(0)], capacity=10)
