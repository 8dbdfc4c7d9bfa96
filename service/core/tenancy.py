"""Which tenant a request acts for.

Every resource belongs to one tenant and every query filters by it, so that another tenant's resource
answers 404 like a missing one. Until API keys exist, every request acts for the one local tenant; an
authentication layer replaces `current_tenant` and nothing else changes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

DEFAULT_TENANT = "local"


def current_tenant() -> str:
    return DEFAULT_TENANT


TenantId = Annotated[str, Depends(current_tenant)]
