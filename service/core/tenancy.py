"""Which tenant a request acts for: the one whose API key it carries (`Authorization: Bearer <key>`).

Every resource belongs to one tenant and every query filters by it, so that another tenant's resource
answers 404 exactly like a missing one. Routes ask for `TenantId`; health and metadata routes that must
answer without a key simply don't.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.core.dependencies import DbSession
from service.tenants.service import tenant_of_key

_bearer = HTTPBearer(auto_error=False, description="An API key from `fusebox admin issue-key TENANT`.")


def current_tenant(
    session: DbSession, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("this endpoint needs an API key: send the header 'Authorization: Bearer <key>'")
    tenant_id = tenant_of_key(session, credentials.credentials)
    if tenant_id is None:
        raise _unauthorized("the API key is not valid or has been revoked: ask your administrator for a new one")
    return tenant_id


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


TenantId = Annotated[str, Depends(current_tenant)]
