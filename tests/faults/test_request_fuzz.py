"""Malformed, oversized and adversarial requests never get a 5xx, never hang, never kill.

Hypothesis throws random JSON, wrong types in the right fields, binary garbage under
assorted content types, deep nesting and huge strings at every POST endpoint of the three
apps. Every answer must be below 500 and arrive within the timeout; app routes must answer
4xx with the JSON error contract; and afterwards every replica actor is the one that was
there before (none crashed and was replaced).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.catalog import CATALOG
from apps.classifier.spec import TILE_SIZE
from apps.haproxy_config import HARDENED_NAME
from apps.spec import ApplicationSpec
from tests.apps.hostile_png import as_base64, hostile_pngs
from tests.faults.conftest import LocalServe, build_classifier_checkpoint, local_serve

pytestmark = [pytest.mark.ray, pytest.mark.faults, pytest.mark.timeout(600)]

ONE_REPLICA = {"autoscaling": {"min_replicas": 1, "max_replicas": 1},
               "resources": {"num_cpus": 0.5}}
APPS: tuple[ApplicationSpec, ...] = (
    CATALOG["embeddings"].with_overrides({"deployments": {"Embedder": ONE_REPLICA}}),
    CATALOG["classifier"].with_overrides({"deployments": {"TileClassifier": ONE_REPLICA}}),
    CATALOG["search"].with_overrides({"deployments": {"Embedder": ONE_REPLICA}}),
)
TIMEOUT_S = 30.0
STATUSES: Counter[int] = Counter()


@dataclass(frozen=True)
class Endpoint:
    app: ApplicationSpec
    path: str
    fields: tuple[str, ...]  # the request model's top-level fields, for field-shaped bodies

    def url(self, served: LocalServe) -> str:
        return served.url(self.app, self.path)


ENDPOINTS = (
    Endpoint(APPS[0], "", ("texts",)),
    Endpoint(APPS[1], "", ("tiles",)),
    Endpoint(APPS[2], "/documents", ("documents",)),
    Endpoint(APPS[2], "/query", ("query", "top_k")),
)
CONTENT_TYPES = (
    "application/json", "application/json; charset=latin-1", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
    "application/octet-stream", "",
)


@pytest.fixture(scope="module")
def served() -> Iterator[LocalServe]:
    build_classifier_checkpoint()
    with local_serve(APPS) as local:
        yield local


@pytest.fixture(scope="module")
def replicas_before(served: LocalServe) -> dict[str, str]:
    return served.replica_actors()


def _send(served: LocalServe, endpoint: Endpoint, body: bytes, content_type: str) -> None:
    """POST and check the contract: < 500, in time, JSON error body for a 4xx."""
    headers = {"content-type": content_type} if content_type else {}
    try:
        response = requests.post(endpoint.url(served), data=body, headers=headers,
                                 timeout=TIMEOUT_S)
    except requests.Timeout:
        pytest.fail(f"no answer within {TIMEOUT_S} s to {body[:200]!r}")
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, (
        f"{response.status_code} for {content_type!r} {body[:300]!r}: {response.text[:500]}")
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["status"] == response.status_code and error["message"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)
endpoints = st.sampled_from(ENDPOINTS)
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(endpoint=endpoints, value=json_values)
def test_any_json_document_gets_a_4xx_or_an_answer(
    served: LocalServe, replicas_before: dict[str, str], endpoint: Endpoint, value: Any
) -> None:
    _send(served, endpoint, json.dumps(value).encode(), "application/json")


@st.composite
def field_shaped(draw: st.DrawFn) -> tuple[Endpoint, dict[str, Any]]:
    """The endpoint's own field names holding wrong (or nested wrong) values."""
    endpoint = draw(endpoints)
    body = {name: draw(json_values) for name in endpoint.fields}
    nested = {"tiles": {"png": st.text(max_size=60), "array": json_values},
              "documents": {"id": json_values, "text": json_values}}
    for name, members in nested.items():
        if name in body and draw(st.booleans()):
            body[name] = [{key: draw(strategy) for key, strategy in members.items()
                           if draw(st.booleans())} for _ in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        body[draw(st.text(min_size=1, max_size=8))] = draw(json_values)  # unknown field
    return endpoint, body


@settings(FUZZ, max_examples=150)
@given(case=field_shaped())
def test_wrong_types_in_the_right_fields_get_a_4xx_or_an_answer(
    served: LocalServe, replicas_before: dict[str, str], case: tuple[Endpoint, dict[str, Any]]
) -> None:
    endpoint, body = case
    _send(served, endpoint, json.dumps(body).encode(), "application/json")


@settings(FUZZ, max_examples=80)
@given(endpoint=endpoints, body=st.binary(max_size=2048),
       content_type=st.sampled_from(CONTENT_TYPES))
def test_binary_garbage_under_any_content_type_gets_a_4xx(
    served: LocalServe, replicas_before: dict[str, str], endpoint: Endpoint, body: bytes,
    content_type: str,
) -> None:
    _send(served, endpoint, body, content_type)


ADVERSARIAL = {
    "deep array nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep object nesting": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep nesting inside a field": b'{"texts": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    "8 MiB string": json.dumps({"texts": ["x" * (8 * 1024**2)]}).encode(),
    "65 k short texts": json.dumps({"texts": ["a"] * 65_000}).encode(),
    "huge number": b'{"top_k": 1' + b"0" * 5000 + b', "query": "q"}',
    "NaN and Infinity": b'{"query": NaN, "top_k": Infinity}',
    "invalid utf-8": b'{"texts": ["\xff\xfe"]}',
    "truncated": b'{"texts": ["abc"',
    "empty body": b"",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.app.name + (e.path or "/"))
def test_adversarial_body_gets_a_4xx(
    served: LocalServe, replicas_before: dict[str, str], endpoint: Endpoint, name: str
) -> None:
    _send(served, endpoint, ADVERSARIAL[name], "application/json")


@pytest.mark.parametrize("name", sorted(hostile_pngs()))
def test_hostile_pngs_get_413_or_422(served: LocalServe, replicas_before: dict[str, str],
                                     name: str) -> None:
    """Decompression bombs and inflating metadata chunks: 500s before the bounded decoder."""
    body = json.dumps({"tiles": [{"png": as_base64(hostile_pngs()[name])}]}).encode()
    response = requests.post(ENDPOINTS[1].url(served), data=body,
                             headers={"content-type": "application/json"}, timeout=TIMEOUT_S)
    STATUSES[response.status_code] += 1
    assert response.status_code in (413, 422), response.text[:300]
    assert response.json()["error"]["details"][0]["field"] == "tiles.0.png"


@pytest.mark.parametrize("form", ["octet-stream", "multipart"])
@pytest.mark.parametrize("name", sorted(hostile_pngs()))
def test_hostile_pngs_as_raw_bytes_get_413_or_422_naming_the_part(
    served: LocalServe, replicas_before: dict[str, str], name: str, form: str
) -> None:
    """The classifier's byte forms go through the same bounded decoder as base64 JSON."""
    png = hostile_pngs()[name]
    if form == "octet-stream":
        response = requests.post(ENDPOINTS[1].url(served), data=png, timeout=TIMEOUT_S,
                                 headers={"content-type": "application/octet-stream"})
        field = "<body>"
    else:
        response = requests.post(ENDPOINTS[1].url(served), timeout=TIMEOUT_S,
                                 files=[("tile", ("b.png", png))])
        field = "tile.0"
    STATUSES[response.status_code] += 1
    assert response.status_code in (413, 422), response.text[:300]
    assert response.json()["error"]["details"][0]["field"] == field


multipart_parts = st.lists(st.tuples(st.sampled_from(["tile", "tiles", "x"]),
                                     st.binary(max_size=300), st.booleans()), max_size=5)


@FUZZ
@given(parts=multipart_parts)
def test_multipart_parts_of_any_bytes_get_a_4xx(
    served: LocalServe, replicas_before: dict[str, str],
    parts: list[tuple[str, bytes, bool]],
) -> None:
    if not parts:  # a multipart body with no part at all
        _send(served, ENDPOINTS[1], b"--xyz--\r\n", "multipart/form-data; boundary=xyz")
        return
    files = [(name, ("t.png", data) if is_file else (None, data))
             for name, data, is_file in parts]
    prepared = requests.Request("POST", ENDPOINTS[1].url(served), files=files).prepare()
    assert isinstance(prepared.body, bytes)
    _send(served, ENDPOINTS[1], prepared.body, prepared.headers["content-type"])


def test_the_apps_are_served_through_haproxy_with_the_stacks_limits(served: LocalServe) -> None:
    """serve.haproxy is on by default: an haproxy process of this cluster serves its port,
    with the client timeout and retry policy derived from serve.ingress."""
    import psutil

    owned = [proc for proc in psutil.process_iter(["name", "cmdline"])
             if proc.info["name"] == "haproxy"
             and any(str(served.haproxy_dir) in part for part in proc.info["cmdline"] or [])]
    assert owned, f"no haproxy process uses {served.haproxy_dir}"
    # ... and it runs servestack's rewrite of Ray's config (apps/haproxy_config.py)
    (config,) = served.haproxy_dir.glob(f"*/{HARDENED_NAME}")
    assert all(str(config) in proc.info["cmdline"] for proc in owned)
    text = config.read_text()
    port = served.base_url.rsplit(":", 1)[1]
    assert f"bind 127.0.0.1:{port}" in text
    assert "timeout client 10s" in text  # serve.ingress.body_timeout_s
    assert "retry-on conn-failure empty-response junk-response" in text
    assert "option http-buffer-request" in text  # a request HAProxy holds can be replayed
    # every listening socket of this HAProxy is on loopback, stats and metrics included
    addresses = {conn.laddr.ip for proc in owned for conn in proc.net_connections("tcp")
                 if conn.status == psutil.CONN_LISTEN}
    assert addresses == {"127.0.0.1"}


# Valid JSON (\u escapes), but a lone surrogate cannot be encoded as UTF-8, which is what
# a tokenizer or PNG decoder does next. Hypothesis's text strategy never generates these.
LONE_SURROGATES = {
    "embeddings/": b'{"texts": ["\\ud800"]}',
    "classifier/": b'{"tiles": [{"png": "\\ud800"}]}',
    "search/documents": b'{"documents": [{"id": "\\udfff", "text": "\\ud800"}]}',
    "search/query": b'{"query": "\\ud800", "top_k": 1}',
}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.app.name + (e.path or "/"))
def test_lone_surrogate_in_a_text_field_gets_a_4xx(
    served: LocalServe, replicas_before: dict[str, str], endpoint: Endpoint
) -> None:
    _send(served, endpoint, LONE_SURROGATES[endpoint.app.name + (endpoint.path or "/")],
          "application/json")


def test_no_replica_died_and_every_app_still_answers(
    served: LocalServe, replicas_before: dict[str, str]
) -> None:
    print(f"\nstatus codes over the fuzz run: {dict(sorted(STATUSES.items()))}")
    assert served.replica_actors() == replicas_before
    valid = [
        (ENDPOINTS[0], {"texts": ["still alive"]}),
        (ENDPOINTS[1], {"tiles": [{"array": [[[200, 180, 190]] * TILE_SIZE] * TILE_SIZE}]}),
        (ENDPOINTS[3], {"query": "still alive", "top_k": 1}),
    ]
    for endpoint, body in valid:
        response = requests.post(endpoint.url(served), json=body, timeout=TIMEOUT_S)
        assert response.status_code == 200, response.text
