"""Pieces of the API's schemas that several domains share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Response models read straight from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel):
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="Rows per page.")] = 50,
    # Databases count rows in 64 bits; a bound keeps a wild offset a 422 instead of a database error.
    offset: Annotated[int, Query(ge=0, le=2**62, description="Rows to skip.")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


class ErrorBody(BaseModel):
    """Every error answer: `detail` under /v1 (a message, or FastAPI's list of field errors), `error` under
    /v2 (the Open Inference Protocol's), `problems` when a job spec has several."""

    detail: str | list[Any] | None = None
    error: str | None = None
    problems: list[str] | None = None


_ERRORS = {
    400: "The request cannot be used as sent: the message says what to change.",
    401: "No API key, or one that is not valid: send 'Authorization: Bearer <key>'.",
    404: "No such resource for this API key's tenant.",
    409: "The request conflicts with the resource's state (a name taken, a model in use, a job finished).",
    413: "An upload or request over the configured size limit.",
    422: "The request or an uploaded file does not fit: the message (and `problems`) say what to change.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description} for code, description in _ERRORS.items()
}
"""Documented on every route, so that the OpenAPI schema lists each answer the service can give."""
