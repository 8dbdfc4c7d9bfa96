"""The embedded default's first start: a service with no tenant at all creates the tenant `local` and
issues its first key, printed once and saved (readable by its owner only) for the example flow."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.errors import Conflict
from service.tenants.models import Tenant
from service.tenants.service import create_tenant, issue_key

LOCAL_TENANT = "local"


def bootstrap_local_tenant(session: Session, key_file: Path) -> str | None:
    """Returns the new key, or None when some tenant exists already (nothing is changed then)."""
    if session.scalar(select(Tenant.id).limit(1)) is not None:
        return None
    try:
        create_tenant(session, LOCAL_TENANT)
    except Conflict:  # another API process started at the same moment and won
        return None
    secret = issue_key(session, LOCAL_TENANT, label="created at first start").secret
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secret + "\n")
    print(
        f"fusebox: created tenant '{LOCAL_TENANT}'. Its API key, shown once (also saved to {key_file}):\n"
        f"    {secret}\nSend it as 'Authorization: Bearer <key>'.",
        flush=True,
    )
    return secret
