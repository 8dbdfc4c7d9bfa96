"""`TenantId`: which tenant a request acts for, the one whose API key it carries (`Authorization: Bearer <key>`).

Every resource belongs to one tenant and every query filters by it, so that another tenant's resource
answers 404 exactly like a missing one. Routes ask for `TenantId`; health and metadata routes that must
answer without a key simply don't.

A key found valid is remembered for `FUSEBOX_AUTH_CACHE_S` (a revoked key stops working within that
time): inference requests then cost no database round trip and hold no pooled connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from service.core.config import get_settings
from service.core.database import get_session_factory
from service.tenants.service import hash_key, tenant_of_hash

_bearer = HTTPBearer(auto_error=False, description="An API key from `fusebox admin issue-key TENANT`.")
_valid_keys: dict[str, tuple[str, float]] = {}
"""sha256 of a key -> (its tenant, when to ask the database again)."""


MISSING_KEY = "this endpoint needs an API key: send the header 'Authorization: Bearer <key>'"
INVALID_KEY = "the API key is not valid or has been revoked: ask your administrator for a new one"


async def current_tenant(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    # A request with a body was authenticated before it was read (service/core/request_guard.py).
    checked: str | None = getattr(request.state, "tenant_id", None)
    if checked is not None:
        return checked
    # HTTPBearer answers None for a missing header and for any other scheme.
    return await authenticated_tenant(None if credentials is None else credentials.credentials)


async def authenticated_tenant(
    key: str | None, missing: str = MISSING_KEY, refuse: Callable[[str], Exception] | None = None
) -> str:
    """The tenant whose key this is; without a key, or with one that is unknown or revoked, `refuse(message)`
    is raised (by default an HTTP 401). The gRPC service passes its own refusal, and says how its clients
    send a key (`missing`)."""
    refusal = refuse or _unauthorized
    if key is None:
        raise refusal(missing)
    tenant_id = await tenant_of_key(key)
    if tenant_id is None:
        raise refusal(INVALID_KEY)
    return tenant_id


async def tenant_of_key(key: str) -> str | None:
    """The tenant whose API key this is, None for no valid key."""
    digest = hash_key(key)
    known = _valid_keys.get(digest)
    if known is not None and known[1] > time.monotonic():
        return known[0]
    tenant_id = await run_in_threadpool(_look_up, digest)
    if tenant_id is None:
        _valid_keys.pop(digest, None)
        return None
    _valid_keys[digest] = (tenant_id, time.monotonic() + get_settings().auth_cache_s)
    return tenant_id


def _look_up(digest: str) -> str | None:
    with get_session_factory()() as session:
        return tenant_of_hash(session, digest)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


TenantId = Annotated[str, Depends(current_tenant)]
