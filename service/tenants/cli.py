"""`fusebox admin ...`: tenants and API keys, straight on the database that DATABASE_URL names."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.orm import Session

from service.core.config import get_settings
from service.core.database import get_session_factory
from service.core.errors import ServiceError
from service.core.migrate import upgrade
from service.tenants import service


def add_admin_commands(commands: argparse._SubParsersAction) -> None:
    admin = commands.add_parser("admin", help="tenants and API keys (on the service's database)")
    admin.set_defaults(run=run_admin)
    actions = admin.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create-tenant", help="create a tenant and issue its first API key")
    create.add_argument("tenant")
    create.set_defaults(action_run=_create_tenant)

    actions.add_parser("list-tenants", help="list the tenants").set_defaults(action_run=_list_tenants)

    issue = actions.add_parser("issue-key", help="issue another API key for a tenant")
    issue.add_argument("tenant")
    issue.add_argument("--label", default="", help="what the key is for, e.g. 'CI' or a person's name")
    issue.set_defaults(action_run=_issue_key)

    keys = actions.add_parser("list-keys", help="list a tenant's keys (prefixes only; keys are never stored)")
    keys.add_argument("tenant")
    keys.set_defaults(action_run=_list_keys)

    revoke = actions.add_parser("revoke-key", help="revoke a key, named by its prefix or given whole")
    revoke.add_argument("key")
    revoke.set_defaults(action_run=_revoke_key)


def run_admin(args: argparse.Namespace) -> int:
    upgrade(get_settings().sqlalchemy_url)
    with get_session_factory()() as session:
        try:
            args.action_run(session, args)
        except ServiceError as error:
            print(f"fusebox admin: {error.message}", file=sys.stderr)
            return 1
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
