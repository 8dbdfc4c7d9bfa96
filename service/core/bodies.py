"""JSON bodies that a route reads raw (to parse them on a worker thread, or after its own checks), validated
into a pydantic model with the same 422 answers FastAPI gives the bodies it parses itself."""

from __future__ import annotations

from typing import TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service.core.hygiene import NotJson, load_large_json

Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body], body: bytes) -> Body:
    """`body` as `model`; 422 for NaN, Infinity, integers beyond 64 bits, bodies that are not JSON and
    values the model refuses."""
    try:
        data = load_large_json(body)
    except NotJson as error:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body",),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": str(error)},
                }
            ]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
        ) from None
