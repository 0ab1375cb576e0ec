"""The search app: composition of ingress, Embedder and VectorIndex over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import requests

from apps.search.spec import IngressSettings
from tests.apps.harness import HTTP_TIMEOUT_S, post

if TYPE_CHECKING:
    from tests.apps.harness import ServedApps

pytestmark = pytest.mark.ray

DOCUMENTS = [
    {"id": "pasta", "text": "Boil the spaghetti for nine minutes, then add the tomato sauce."},
    {"id": "ray", "text": "Ray Serve scales machine learning model inference on a cluster."},
    {"id": "tides", "text": "Tides are caused by the gravitational pull of the moon."},
    {"id": "tax", "text": "File your income tax return before the April deadline."},
]


@pytest.fixture
def empty_index(served: ServedApps) -> Iterator[ServedApps]:
    requests.delete(served.url("search", "/documents"), timeout=HTTP_TIMEOUT_S).raise_for_status()
    yield served
    requests.delete(served.url("search", "/documents"), timeout=HTTP_TIMEOUT_S).raise_for_status()


def _ok(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _query(served: ServedApps, query: str, top_k: int = 4) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = _ok(post(
        served.url("search", "/query"), {"query": query, "top_k": top_k}
    ))["hits"]
    return hits


def _count(served: ServedApps) -> dict[str, int]:
    counts: dict[str, int] = _ok(
        requests.get(served.url("search", "/documents/count"), timeout=HTTP_TIMEOUT_S)
    )
    return counts


def test_the_relevant_document_ranks_first(empty_index: ServedApps) -> None:
    added = _ok(post(empty_index.url("search", "/documents"), {"documents": DOCUMENTS}))
    assert added == {"added": 4, "replaced": 0, "total": 4}
    assert _query(empty_index, "how long do I cook pasta?")[0]["id"] == "pasta"
    assert _query(empty_index, "serving ML models at scale")[0]["id"] == "ray"
    hits = _query(empty_index, "why does the sea rise and fall", top_k=2)
    assert [hit["id"] for hit in hits][:1] == ["tides"]
    assert len(hits) == 2
    assert hits[0]["score"] >= hits[1]["score"]
    assert hits[0]["text"] == DOCUMENTS[2]["text"]


def test_scores_are_cosines_of_the_embedding_apps_vectors(empty_index: ServedApps) -> None:
    """Composition: the ingress embeds through the Embedder and ranks in the VectorIndex."""
    _ok(post(empty_index.url("search", "/documents"), {"documents": DOCUMENTS}))
    query = "cooking dinner"
    texts = [doc["text"] for doc in DOCUMENTS]
    vectors = np.array(_ok(post(empty_index.url("embeddings"), {"texts": [query, *texts]}))[
        "embeddings"
    ])
    cosines = dict(zip([doc["id"] for doc in DOCUMENTS], vectors[1:] @ vectors[0], strict=True))
    hits = _query(empty_index, query)
    assert [hit["id"] for hit in hits] == sorted(cosines, key=lambda i: -cosines[i])
    for hit in hits:
        assert hit["score"] == pytest.approx(cosines[hit["id"]], abs=1e-4)


def test_adding_an_existing_id_replaces_the_document(empty_index: ServedApps) -> None:
    url = empty_index.url("search", "/documents")
    _ok(post(url, {"documents": DOCUMENTS[:2]}))
    replaced = _ok(post(url, {"documents": [
        {"id": "pasta", "text": "Volcanoes erupt molten rock."},
        DOCUMENTS[2],
    ]}))
    assert replaced == {"added": 1, "replaced": 1, "total": 3}
    assert _query(empty_index, "lava and eruptions", top_k=1)[0]["id"] == "pasta"


def test_delete_empties_the_index(empty_index: ServedApps) -> None:
    _ok(post(empty_index.url("search", "/documents"), {"documents": DOCUMENTS}))
    assert _count(empty_index)["count"] == 4
    deleted = requests.delete(empty_index.url("search", "/documents"), timeout=HTTP_TIMEOUT_S)
    assert _ok(deleted) == {"deleted": 4}
    assert _count(empty_index)["count"] == 0
    assert _query(empty_index, "anything") == []


def test_a_full_index_answers_409_and_keeps_its_documents(empty_index: ServedApps) -> None:
    empty_index.redeploy("search", {"VectorIndex": {"user_config": {"max_documents": 3}}})
    try:
        assert _count(empty_index) == {"count": 0, "max_documents": 3}
        url = empty_index.url("search", "/documents")
        _ok(post(url, {"documents": DOCUMENTS[:2]}))
        refused = post(url, {"documents": DOCUMENTS[2:]})
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "index_full"
        assert "settings.max_documents" in error["message"]
        assert _count(empty_index)["count"] == 2
        # Replacing existing ids needs no room.
        assert _ok(post(url, {"documents": DOCUMENTS[:2]}))["replaced"] == 2
    finally:
        empty_index.redeploy("search")
    assert _count(empty_index)["max_documents"] == 100_000


def test_ingress_limits_are_live_settings(served: ServedApps) -> None:
    served.redeploy("search", {"SearchIngress": {"user_config": {"max_top_k": 2}}})
    try:
        refused = post(served.url("search", "/query"), {"query": "x", "top_k": 3})
        assert refused.status_code == 422
        [detail] = refused.json()["error"]["details"]
        assert detail == {
            "field": "top_k", "message": "3 is above the maximum 2 (user_config settings.max_top_k)"
        }
    finally:
        served.redeploy("search")
    assert post(served.url("search", "/query"), {"query": "x", "top_k": 3}).status_code == 200


def test_adds_and_queries_over_the_character_budget_get_413(empty_index: ServedApps) -> None:
    served = empty_index
    budget = IngressSettings().max_request_chars
    documents = [{"id": str(i), "text": "y" * 1000} for i in range(budget // 1000 + 1)]
    refused = post(served.url("search", "/documents"), {"documents": documents})
    assert refused.status_code == 413, refused.text
    assert "settings.max_request_chars" in refused.json()["error"]["message"]
    assert _count(served)["count"] == 0
    served.redeploy("search", {"SearchIngress": {"user_config": {"max_request_chars": 10}}})
    try:
        refused = post(served.url("search", "/query"), {"query": "eleven chars"})
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert error["details"][0]["field"] == "query"
        assert "budget is 10 (user_config settings.max_request_chars)" in error["message"]
        assert post(served.url("search", "/query"), {"query": "ten chars!"}).status_code == 200
    finally:
        served.redeploy("search")
