"""What every command that talks to the service shares: where the service is, and one open client."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import wraps
from typing import Any

from service.client.client import DEFAULT_URL, FuseboxClient

Command = Callable[[argparse.Namespace], int]
ServerCommand = Callable[[FuseboxClient, argparse.Namespace], int]


def add_server_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: Any = None) -> None:
    """On the top-level parser (default None) and again on every server command with argparse.SUPPRESS
    as the default, so that `fusebox --url X models list` and `fusebox models list --url X` both work: a
    command's parser then sets the option only when it was given after the command."""
    parser.add_argument("--url", default=default, help=f"the fusebox API (default: $FUSEBOX_URL, else {DEFAULT_URL})")
    parser.add_argument(
        "--api-key", default=default, help="sent as 'Authorization: Bearer <key>' (default: $FUSEBOX_API_KEY)"
    )


def server_command(parser: argparse.ArgumentParser, command: ServerCommand) -> None:
    """Makes `parser` run `command` with a client opened from --url/--api-key (or the environment)."""
    add_server_options(parser, default=argparse.SUPPRESS)
    parser.set_defaults(run=on_server(command))


def on_server(command: ServerCommand) -> Command:
    @wraps(command)
    def run(args: argparse.Namespace) -> int:
        with FuseboxClient(args.url, args.api_key) as client:
            return command(client, args)

    return run
