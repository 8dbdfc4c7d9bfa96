"""`fusebox`: the parser of every command, and each failure reported as one line."""

from __future__ import annotations

import argparse
import sys

from service.cli.admin import register_admin_commands
from service.cli.catalog import register_catalog_commands
from service.cli.deployments import register_deployment_commands
from service.cli.engine import register_engine_commands
from service.cli.errors import REPORTED_ERRORS, one_line
from service.cli.jobs import register_job_commands
from service.cli.predict import register_predict_command
from service.cli.remote import add_server_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fusebox", description="Fuse trained single-task models into one.")
    add_server_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    fuse = register_engine_commands(commands)
    register_catalog_commands(commands)
    register_job_commands(commands, fuse)
    register_predict_command(commands)
    register_deployment_commands(commands)
    register_admin_commands(commands)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except REPORTED_ERRORS as error:
        print(f"fusebox: {one_line(error)}", file=sys.stderr)
        return 1
