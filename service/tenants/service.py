"""Creating tenants, issuing, checking and revoking API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.database import utcnow
from service.core.errors import Conflict, NotFound, Unprocessable
from service.tenants.models import ApiKey, Tenant

KEY_PREFIX = "fbx_"
PREFIX_LENGTH = 12
_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `secret` is shown once, to whoever asked for it, and stored nowhere."""

    record: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    # Keys are 256 random bits, so a plain hash cannot be brute-forced; a slow password hash would only
    # slow down every request.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_tenant(session: Session, name: str) -> Tenant:
    if not _TENANT_NAME.match(name):
        raise Unprocessable(
            f"tenant name {name!r} is not allowed: use 1 to 64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    tenant = Tenant(id=name)
    session.add(tenant)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"tenant {name!r} exists already") from None
    return tenant


def list_tenants(session: Session) -> Sequence[Tenant]:
    return session.scalars(select(Tenant).order_by(Tenant.id)).all()


def issue_key(session: Session, tenant_id: str, label: str = "") -> IssuedKey:
    if session.get(Tenant, tenant_id) is None:
        raise NotFound(f"there is no tenant {tenant_id!r}: create it first")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(tenant_id=tenant_id, key_hash=hash_key(secret), prefix=secret[:PREFIX_LENGTH], label=label)
    session.add(record)
    session.commit()
    return IssuedKey(record=record, secret=secret)


def list_keys(session: Session, tenant_id: str) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)).all()


def revoke_key(session: Session, key: str) -> ApiKey:
    """Revokes a live key, named by its printed prefix or given whole."""
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    if len(key) > PREFIX_LENGTH:
        query = query.where(ApiKey.key_hash == hash_key(key))
    else:
        query = query.where(ApiKey.prefix == key)
    matches = session.scalars(query).all()
    if not matches:
        raise NotFound(f"no live API key matches {key[:PREFIX_LENGTH]!r}...: see `fusebox admin list-keys TENANT`")
    if len(matches) > 1:
        raise Conflict(f"{len(matches)} live keys start with {key!r}: give the whole key")
    revoked = matches[0]
    revoked.revoked_at = utcnow()
    session.commit()
    return revoked


def tenant_of_hash(session: Session, key_hash: str) -> str | None:
    """The tenant a live key (given by its hash) belongs to, or None for an unknown or revoked key."""
    return session.scalar(select(ApiKey.tenant_id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))
