"""JSON in and out of the apps in one pass each: pydantic parses bytes, orjson writes them.

FastAPI's typed body parameter reads a body with `json.loads` and then validates the Python
objects it built (two walks over every item), and its typed return value is validated again
before `json.dumps`. Here the body is parsed and validated by pydantic-core straight from
bytes (`model_validate_json`) and the response dict goes to orjson as it is. Both errors keep
the contract of apps/http_contract.py: bad JSON is a 400 `bad_json`, a wrong shape a 422
naming the field (raised as FastAPI's RequestValidationError so one handler renders both).
Measured in docs/benchmarks.md ("Request handling").
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

Model = TypeVar("Model", bound=BaseModel)

JSON_MEDIA_TYPE = "application/json"


class JsonResponse(Response):
    """A JSON response rendered by orjson (numpy arrays included, no re-validation)."""

    media_type = JSON_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_json(body: bytes, model: type[Model]) -> Model:
    """`model` from the raw body, or RequestValidationError with FastAPI's `body` locations."""
    if not body.strip():
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors(
                include_url=False, include_input=False)]) from None


async def parse_json_body(request: Request, model: type[Model]) -> Model:
    """The request body as `model`, parsed once from bytes."""
    return parse_json(await request.body(), model)


def openapi_body(model: type[BaseModel], *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`openapi_extra` documenting a body the route parses itself (FastAPI cannot see it)."""
    content: dict[str, Any] = {JSON_MEDIA_TYPE: {"schema": model.model_json_schema()}}
    content.update(extra or {})
    return {"requestBody": {"required": True, "content": content}}
