"""The HTTP contract every servestack app shares: malformed requests get 4xx JSON.

Body shape, always: `{"error": {"status", "code", "message", "details": [{"field",
"message"}]}}`. Codes: `bad_json` 400, `not_found` 404, `method_not_allowed` 405,
`request_timeout` 408, `conflict`/`index_full` 409, `payload_too_large` 413,
`invalid_request` 422, `not_ready` 503, `internal` 500 (a bug, never the client's input),
`replica_failed` 500 (the proxy lost the replica; apps/ingress.py answers it).

The request-size limit is read from the running replica (`max_request_bytes`, a live
user_config setting), and the body is refused before it is parsed: by its Content-Length
when declared, else while it streams in. The bare route prefix (`POST /embed`) is served
as the app's root instead of being redirected to `/embed/` (a 307 most clients would not
follow with the body).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.error_body import error_body, error_code
from apps.json_io import JsonResponse

logger = logging.getLogger(__name__)


def _utf8_encodable(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); tokenizers and responses cannot encode them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"text is not valid Unicode (unpaired surrogate at index {error.start})"
        ) from None
    return value


Text = Annotated[str, AfterValidator(_utf8_encodable)]
"""A request string that is valid Unicode: a client error (422) instead of a 500 later."""



class ApiError(Exception):
    """An error the client can fix; rendered as the contract's JSON body."""

    def __init__(self, status: int, code: str, problem: str, *, field: str | None = None) -> None:
        self.status = status
        self.code = code
        self.problem = problem
        self.field = field
        self.message = f"{field}: {problem}" if field else problem
        super().__init__(self.message)


class RequestTooLarge(StarletteHTTPException):
    """Raised from `receive` so FastAPI re-raises it untouched instead of calling it a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large_message(limit))


class RequestLimited(Protocol):
    """What the body-size middleware needs from the replica it runs in."""

    @property
    def max_request_bytes(self) -> int: ...


def _too_large_message(limit: int) -> str:
    return (
        f"request body exceeds {limit} bytes (user_config settings.max_request_bytes); "
        "send fewer items per request"
    )


def error_response(
    status: int, code: str, message: str, details: Iterable[Mapping[str, str]] = ()
) -> JsonResponse:
    return JsonResponse(error_body(status, code, message, details), status_code=status)


def field_path(loc: Sequence[int | str]) -> str:
    """Pydantic's location without FastAPI's leading `body`: `texts.3`, `tiles.0.png`."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(str(part) for part in parts) or "<body>"


async def _api_error(_: Request, error: Exception) -> JsonResponse:
    assert isinstance(error, ApiError)
    details = [{"field": error.field, "message": error.problem}] if error.field else []
    return error_response(error.status, error.code, error.message, details)


async def _validation_error(_: Request, error: Exception) -> JsonResponse:
    assert isinstance(error, RequestValidationError)
    problems = list(error.errors())
    bad_json = [p for p in problems if p.get("type") == "json_invalid"]
    if bad_json:
        reason = (bad_json[0].get("ctx") or {}).get("error", "JSON decode error")
        loc = bad_json[0].get("loc", ())  # json.loads names a position; pydantic-core, a line
        where = f" at position {loc[-1]}" if len(loc) > 1 else ""
        return error_response(400, "bad_json", f"request body is not valid JSON: {reason}{where}")
    details = []
    for problem in problems:
        path = field_path(problem.get("loc", ()))
        message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
        if problem.get("type") == "missing" and path == "<body>":
            message = "a JSON request body is required"
        details.append({"field": path, "message": message})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return error_response(422, "invalid_request", f"invalid request: {summary}{more}", details)


def _unparsable_body(error: Exception) -> str | None:
    """Why FastAPI's generic "error parsing the body" 400 happened, when it is bad JSON:
    bytes that are not UTF-8, or nesting deeper than the parser's recursion limit."""
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"it is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at position {cause.start})"
    if isinstance(cause, RecursionError):
        return "it is nested too deeply"
    return None


def _leaf_routes(routes: Iterable[Any]) -> Iterable[Any]:
    """Routes with methods, also those nested in included routers (Serve's class-based
    view re-mounts the routes on a router of its own)."""
    for route in routes:
        # FastAPI >= 0.137 keeps an included router as one node holding `original_router`
        # (Serve's class-based view includes one; its routes carry their full path).
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _leaf_routes(included.routes)
        else:
            yield route


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this app accepts at the request's path."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    # Serve and Starlette disagree on whether `path` includes the route prefix: try both.
    candidates = {path, path.removeprefix(root) or "/"} if root else {path}
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and any(regex.match(candidate) for candidate in candidates):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _http_error(request: Request, error: Exception) -> JsonResponse:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    code = error_code(status)
    headers = dict(error.headers or {})
    reason = _unparsable_body(error) if status == 400 else None
    if reason:
        code, message = "bad_json", f"request body is not valid JSON: {reason}"
    elif status == 404:
        message = f"no endpoint {request.method} {request.url.path}"
    elif status == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"
    else:
        message = str(error.detail)
    response = error_response(status, code, message)
    response.headers.update(headers)
    return response


async def _unexpected_error(_: Request, error: Exception) -> JsonResponse:
    logger.exception("unhandled error", exc_info=error)
    message = f"internal error ({type(error).__name__}); see the replica logs"
    return error_response(500, "internal", message)


def replica_request_limit() -> int:
    """`max_request_bytes` of the replica serving this request (its live user_config)."""
    from ray import serve

    servable: RequestLimited = serve.get_replica_context().servable_object  # type: ignore[assignment]
    return int(servable.max_request_bytes)


class BarePrefixAsRoot:
    """ASGI middleware: a request for exactly the route prefix is routed as `<prefix>/`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        if scope["type"] == "http" and root and scope["path"] == root:
            scope = {**scope, "path": root + "/", "raw_path": (root + "/").encode()}
        await self.app(scope, receive, send)


class RequestBodyLimit:
    """ASGI middleware refusing bodies above a live limit with a 413 JSON error."""

    def __init__(self, app: ASGIApp, max_request_bytes: Callable[[], int]) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_request_bytes()
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                response = error_response(400, "bad_request", "Content-Length is not a number")
                await response(scope, receive, send)
                return
            if int(declared) > limit:
                response = error_response(413, "payload_too_large", _too_large_message(limit))
                await response(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    status: int
    code: str = Field(description="bad_json, not_found, method_not_allowed, payload_too_large, "
                      "invalid_request, not_ready, ...")
    message: str
    details: list[ErrorDetail] = []
    details_truncated: int | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx an app sends."""

    error: ErrorInfo


CONTRACT_RESPONSES = {
    "400": "Malformed request: bad_json (not JSON, not UTF-8, nested too deeply) or bad_request.",
    "405": "Method not allowed here; the Allow header lists the methods that are.",
    "413": "payload_too_large: body or item counts above the app's live limits.",
    "422": "invalid_request: the JSON does not match the request model; details name fields.",
}


def _openapi_with_contract(app: FastAPI) -> None:
    """Every operation documents the contract's error responses, with the real body schema
    (FastAPI would list only 422, with its own HTTPValidationError shape)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        definitions = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(definitions.pop("$defs", {}))
        components["ErrorResponse"] = definitions
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        reference = {"$ref": "#/components/schemas/ErrorResponse"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in CONTRACT_RESPONSES.items():
                    if status == "422" and "requestBody" not in operation \
                            and "parameters" not in operation:
                        continue
                    responses[status] = {"description": description,
                                         "content": {"application/json": {"schema": reference}}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_contract(
    app: FastAPI, max_request_bytes: Callable[[], int] = replica_request_limit
) -> FastAPI:
    """Wire the contract into a FastAPI app: body limit, bare prefix, JSON error handlers,
    and the error responses in its OpenAPI schema."""
    _openapi_with_contract(app)
    app.add_middleware(RequestBodyLimit, max_request_bytes=max_request_bytes)
    app.add_middleware(BarePrefixAsRoot)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app


def require_at_most(count: int, limit: int, *, field: str, setting: str, what: str) -> None:
    """413 naming the field and the setting that bounds it, when a request carries too much."""
    if count > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"{count} {what}, at most {limit} accepted (user_config settings.{setting})",
            field=field,
        )


def require_budget(cost: int, budget: int, *, unit: str, setting: str, field: str) -> None:
    """413 before any model work when a request's total cost exceeds the per-request budget:
    the budget, not the item caps, bounds how long one request holds a replica's batch queue."""
    if cost > budget:
        raise ApiError(
            413,
            "payload_too_large",
            f"request costs {cost} {unit}, the per-request work budget is {budget} "
            f"(user_config settings.{setting}); split it into smaller requests",
            field=field,
        )


def require_texts_within(
    texts: Sequence[str], limit: int, *, field_template: str, setting: str
) -> None:
    """413 for the first text longer than `limit`; `field_template` like `texts.{index}`."""
    for index, text in enumerate(texts):
        require_at_most(
            len(text), limit, field=field_template.format(index=index),
            setting=setting, what="characters",
        )
