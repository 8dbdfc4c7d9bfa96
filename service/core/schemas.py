"""Pieces of the API's schemas that several domains share."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict

TaskType = Literal["binary", "regression", "multiclass"]
"""The engine's fusion.tasks.TaskType values, spelled out here because that module imports torch."""


class ApiModel(BaseModel):
    """Response models read straight from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel):
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="Rows per page.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Rows to skip.")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)
