"""What the client raises: the server's refusal with its own words, or no answer at all."""

from __future__ import annotations

from typing import Any

import httpx


class FuseboxError(Exception):
    """Anything that kept a client call from getting its answer."""


class ServiceUnreachable(FuseboxError):
    """No HTTP answer: connection refused, DNS, timeout."""


class ApiError(FuseboxError):
    """The service answered with an error status. `message` is the server's own explanation and
    `problems` its list of every issue, when it gave one (a refused job spec lists them all)."""

    def __init__(self, status_code: int, message: str, problems: list[str], method: str, url: str) -> None:
        self.status_code = status_code
        self.message = message
        self.problems = problems
        self.method = method
        self.url = url
        super().__init__(f"{status_code}: {message}" + "".join(f"\n  - {problem}" for problem in problems))

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        message, problems = _explanation(response)
        return cls(response.status_code, message, problems, response.request.method, str(response.request.url))


def _explanation(response: httpx.Response) -> tuple[str, list[str]]:
    """/v1 answers {"detail": ...} (a string, or FastAPI's list of field errors), /v2 answers {"error": ...}."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase, []
    if not isinstance(body, dict):
        return str(body), []
    problems = [str(problem) for problem in body.get("problems") or []]
    detail = body.get("detail", body.get("error"))
    if isinstance(detail, list):
        field_errors = [_field_error(item) for item in detail]
        return f"the request has {len(field_errors)} invalid field(s)", [*problems, *field_errors]
    return str(detail if detail is not None else response.reason_phrase), problems


def _field_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
    return f"{where}: {item.get('msg', item)}" if where else str(item.get("msg", item))
