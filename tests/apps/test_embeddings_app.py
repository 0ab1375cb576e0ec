"""The embeddings app over real HTTP and handles: vectors, batching, live reconfigure."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from apps.batching import spec_batching
from apps.embeddings.encoder import MODEL_NAME
from apps.embeddings.spec import EMBEDDER, EMBEDDING_DIM, EmbedderSettings
from tests.apps.harness import post

DEFAULT_BATCH = spec_batching(EMBEDDER).max_batch_size  # the spec's, never a copy

if TYPE_CHECKING:
    from tests.apps.harness import ServedApps

pytestmark = pytest.mark.ray


def _describe() -> dict[str, Any]:
    from ray import serve

    info: dict[str, Any] = serve.get_app_handle("embeddings").describe.remote().result()
    return info


def _batches_since(before: dict[str, Any]) -> Counter[int]:
    """Batches (by size) the replica ran since `before` was taken."""
    now = _describe()["batching"]["observed_batch_sizes"]
    then = before["batching"]["observed_batch_sizes"]
    return Counter({int(size): count - then.get(size, 0) for size, count in now.items()
                    if count - then.get(size, 0) > 0})


def _embed(served: ServedApps, texts: list[str]) -> np.ndarray:
    response = post(served.url("embeddings"), {"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dim"] == EMBEDDING_DIM
    assert body["model"] == MODEL_NAME
    return np.array(body["embeddings"])


def test_embeds_each_text_as_a_unit_vector(served: ServedApps) -> None:
    vectors = _embed(served, ["hello world", "ray serve on kubernetes", ""])
    assert vectors.shape == (3, EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(served: ServedApps) -> None:
    cat, kitten, taxes = _embed(served, [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The quarterly tax filing deadline is next week.",
    ])
    assert cat @ kitten > cat @ taxes + 0.3
    assert cat @ kitten > kitten @ taxes + 0.3


def test_the_handle_method_returns_what_http_returns(served: ServedApps) -> None:
    from ray import serve

    texts = ["composition goes through the same batcher", "second"]
    via_handle = serve.get_app_handle("embeddings").embed.remote(texts).result()
    np.testing.assert_allclose(np.array(via_handle), _embed(served, texts), atol=1e-6)


def test_a_large_request_runs_in_batches_of_max_batch_size(served: ServedApps) -> None:
    before = _describe()
    assert before["batching"]["max_batch_size"] == DEFAULT_BATCH
    _embed(served, [f"text number {i}" for i in range(40)])
    batches = _batches_since(before)
    assert sum(size * count for size, count in batches.items()) == 40
    assert max(batches) == DEFAULT_BATCH


def test_concurrent_requests_share_batches_and_batching_is_tunable_live(
    served: ServedApps,
) -> None:
    served.redeploy(
        "embeddings", {"Embedder": {"batching": {"max_batch_size": 4, "batch_wait_timeout_s": 0.5}}}
    )
    try:
        before = _describe()
        assert before["batching"]["max_batch_size"] == 4
        assert before["batching"]["batch_wait_timeout_s"] == 0.5
        with ThreadPoolExecutor(max_workers=12) as pool:
            shapes = list(pool.map(lambda i: _embed(served, [f"client {i}"]).shape, range(12)))
        assert shapes == [(1, EMBEDDING_DIM)] * 12
        batches = _batches_since(before)
        assert sum(size * count for size, count in batches.items()) == 12
        assert max(batches) <= 4, batches
        assert max(batches) > 1, f"12 concurrent requests never shared a batch: {batches}"
    finally:
        served.redeploy("embeddings")
    assert _describe()["batching"]["max_batch_size"] == DEFAULT_BATCH


def test_reconfigure_changes_request_limits_without_a_restart(served: ServedApps) -> None:
    texts = ["one", "two", "three"]
    _embed(served, texts)
    before = _describe()
    served.redeploy("embeddings", {"Embedder": {"user_config": {"max_texts_per_request": 2}}})
    try:
        refused = post(served.url("embeddings"), {"texts": texts})
        assert refused.status_code == 413
        error = refused.json()["error"]
        assert error["code"] == "payload_too_large"
        assert "settings.max_texts_per_request" in error["message"]
        info = _describe()
        assert info["settings"]["max_texts_per_request"] == 2
        # Same replica, same in-memory batch history: reconfigured, not restarted.
        assert info["replica"] == before["replica"]
        history = before["batching"]["observed_batch_sizes"]
        assert info["batching"]["observed_batch_sizes"] == history
    finally:
        served.redeploy("embeddings")
    _embed(served, texts)


def test_a_request_over_the_character_budget_gets_413_before_the_model_runs(
    served: ServedApps,
) -> None:
    # Each text and the count are within their own caps; together they exceed the budget.
    budget = EmbedderSettings().max_request_chars
    texts = ["x" * 1000] * (budget // 1000 + 1)
    before = _describe()["batching"]["observed_batch_sizes"]
    refused = post(served.url("embeddings"), {"texts": texts})
    assert refused.status_code == 413, refused.text
    error = refused.json()["error"]
    assert error["code"] == "payload_too_large"
    assert f"request costs {len(texts) * 1000} characters" in error["message"]
    assert f"budget is {budget} (user_config settings.max_request_chars)" in error["message"]
    assert error["details"][0]["field"] == "texts"
    assert _describe()["batching"]["observed_batch_sizes"] == before  # nothing encoded
    assert _embed(served, texts[: budget // 1000]).shape[0] == budget // 1000


WAIT_BOUND_S = 4.0
"""docs/security.md measures ~2 s here for a request right behind one at the budget; the
assertion allows twice that for a loaded CI machine. Before the budget: 6.9 s."""


def _waits_behind(served: ServedApps, texts: list[str]) -> tuple[int, float]:
    """Status of a request of `texts`, and how long a 1-text request sent just after it took."""
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(post, served.url("embeddings"), {"texts": texts})
        time.sleep(0.3)  # let it reach the replica's batch queue first
        start = time.perf_counter()
        assert post(served.url("embeddings"), {"texts": ["right behind"]}).status_code == 200
        waited = time.perf_counter() - start
        return big.result().status_code, waited


def test_one_clients_largest_request_holds_the_next_one_less_than_the_stated_bound(
    served: ServedApps,
) -> None:
    settings = EmbedderSettings()
    # Every item cap at its maximum (64 x 2000 characters of words, each text truncated to the
    # encoder's 256 tokens): what one client could send before. A run of one letter would be a
    # single unknown token, cheap.
    words = ("ray serve keeps answering " * 100)[: settings.max_text_chars]
    every_cap = [words] * settings.max_texts_per_request
    # The worst the budget admits: one token per character (CJK), 256 tokens a text.
    at_budget = ["語" * 256] * (settings.max_request_chars // 256)
    for name, texts, expected in (("every item cap", every_cap, 413),
                                  ("at the budget", at_budget, 200)):
        status, waited = _waits_behind(served, texts)
        print(f"\n{name}: {status}; a 1-text embed right behind it took {waited:.2f} s")
        assert status == expected
        assert waited < WAIT_BOUND_S
