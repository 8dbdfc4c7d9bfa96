"""Reads of tenant-owned rows: one by id, or a page of them, newest first. Another tenant's row answers
exactly like a missing one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from service.core.database import TenantOwned
from service.core.errors import NotFound
from service.core.schemas import Page

Owned = TypeVar("Owned", bound=TenantOwned)


def get_owned(session: Session, kind: type[Owned], tenant_id: str, row_id: uuid.UUID, noun: str) -> Owned:
    """The row, or NotFound saying '{noun} {row_id} not found'."""
    row = session.get(kind, row_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"{noun} {row_id} not found")
    return row


def list_owned(
    session: Session,
    kind: type[Owned],
    tenant_id: str,
    page: Page,
    *conditions: ColumnElement[bool],
    then_by: Sequence[ColumnElement[Any]] = (),
) -> Sequence[Owned]:
    """The tenant's rows that meet `conditions`, newest first (ties ordered by `then_by`), one page of them."""
    query = (
        select(kind)
        .where(kind.tenant_id == tenant_id, *conditions)
        .order_by(kind.created_at.desc(), *then_by)
        .limit(page.limit)
        .offset(page.offset)
    )
    return session.scalars(query).all()
