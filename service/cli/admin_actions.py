"""What each `fusebox admin` action does on the service's database (migrated first, as the API would)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.cli.errors import CommandError
from service.core.config import get_settings
from service.core.database import get_session_factory
from service.core.errors import ServiceError
from service.core.migrate import upgrade
from service.tenants import service


def run_action(args: argparse.Namespace) -> int:
    try:
        upgrade(get_settings().sqlalchemy_url)
        with get_session_factory()() as session:
            ACTIONS[args.action](session, args)
    except ServiceError as error:
        raise CommandError(str(error.status_code), error.message) from error
    except OperationalError as error:  # the database is down, or DATABASE_URL names none
        raise CommandError("unreachable", f"the database: {' '.join(str(error.orig).split())}") from error
    return 0


def _create_tenant(session: Session, args: argparse.Namespace) -> None:
    service.create_tenant(session, args.tenant)
    issued = service.issue_key(session, args.tenant, label="first key")
    print(f"created tenant {args.tenant!r}; its API key (shown once, store it now):\n{issued.secret}")


def _list_tenants(session: Session, args: argparse.Namespace) -> None:
    for tenant in service.list_tenants(session):
        print(f"{tenant.id}\tcreated {tenant.created_at:%Y-%m-%d %H:%M}")


def _issue_key(session: Session, args: argparse.Namespace) -> None:
    print(service.issue_key(session, args.tenant, label=args.label).secret)


def _list_keys(session: Session, args: argparse.Namespace) -> None:
    for key in service.list_keys(session, args.tenant):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
        print(f"{key.prefix}...\t{state}\tcreated {key.created_at:%Y-%m-%d %H:%M}\t{key.label}")


def _revoke_key(session: Session, args: argparse.Namespace) -> None:
    key = service.revoke_key(session, args.key)
    print(f"revoked {key.prefix}... of tenant {key.tenant_id!r}")


ACTIONS: dict[str, Callable[[Session, argparse.Namespace], None]] = {
    "create-tenant": _create_tenant,
    "list-tenants": _list_tenants,
    "issue-key": _issue_key,
    "list-keys": _list_keys,
    "revoke-key": _revoke_key,
}
