"""Every failure of a command is one line, `fusebox: <status>: <message>`: the HTTP status of a refused
request, or a word for what went wrong on this side (invalid, not found, unreachable ...)."""

from __future__ import annotations

from pydantic import ValidationError

from service.client.errors import ApiError, ServiceUnreachable


class CommandError(Exception):
    """A failure the command found itself: a name nothing has, a job that did not succeed."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


REPORTED_ERRORS = (CommandError, ApiError, ServiceUnreachable, ValueError, OSError)
"""What a command may fail with for a reason the user can act on; anything else is a bug and keeps its traceback."""


def one_line(error: BaseException) -> str:
    """`<status>: <message>` with every problem the server or pydantic listed, on a single line."""
    if isinstance(error, CommandError):
        return f"{error.status}: {error.message}"
    if isinstance(error, ApiError):
        return f"{error.status_code}: {'; '.join([error.message, *error.problems])}"
    if isinstance(error, ServiceUnreachable):
        return f"unreachable: {error}"
    if isinstance(error, ValidationError):  # before ValueError, which it is: its own text spans many lines
        problems = [f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()]
        return f"invalid: {'; '.join(problems)}"
    if isinstance(error, FileNotFoundError):
        return f"not found: there is no file {error.filename}"
    text = " ".join(str(error).split())
    return f"io: {text}" if isinstance(error, OSError) else f"invalid: {text}"
