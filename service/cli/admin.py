"""`fusebox admin ...`: tenants and API keys, straight on the database that DATABASE_URL names.

Only the command line is defined here; service/cli/admin_actions.py, which imports SQLAlchemy and the
service's internals, is loaded when an admin command runs: a client install has none of them, and its
`fusebox --help` must still work."""

from __future__ import annotations

import argparse


def register_admin_commands(commands: argparse._SubParsersAction) -> None:
    admin = commands.add_parser("admin", help="tenants and API keys (on the service's database)")
    admin.set_defaults(run=_run_admin)
    actions = admin.add_subparsers(dest="action", required=True)

    actions.add_parser("create-tenant", help="create a tenant and issue its first API key").add_argument("tenant")
    actions.add_parser("list-tenants", help="list the tenants")

    issue = actions.add_parser("issue-key", help="issue another API key for a tenant")
    issue.add_argument("tenant")
    issue.add_argument("--label", default="", help="what the key is for, e.g. 'CI' or a person's name")

    keys = actions.add_parser("list-keys", help="list a tenant's keys (prefixes only; keys are never stored)")
    keys.add_argument("tenant")

    revoke = actions.add_parser("revoke-key", help="revoke a key, named by its prefix or given whole")
    revoke.add_argument("key")


def _run_admin(args: argparse.Namespace) -> int:
    from service.cli.admin_actions import run_action

    return run_action(args)
