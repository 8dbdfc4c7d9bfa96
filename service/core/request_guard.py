"""The cheap checks every request passes before any route reads its body, cheapest first:

1. Its path and query string hold no control character (422).
2. A request that may carry a body (POST, PUT, PATCH) to a route that wants a key is authenticated from its
   headers (401): FastAPI parses a JSON body before it runs any dependency, so the route's own check would
   come only after the whole body was read and parsed.
3. The body fits the route's limit: a Content-Length over it is refused at once, and a body that comes
   without one (chunked) or that lies about it is refused as soon as it passes the limit (413).
4. A small JSON body (every JSON route but inference, whose bodies are large and parsed by their own code)
   is read whole - it is under the limit - and refused when it holds NaN or Infinity, an integer beyond
   64 bits or a control character in a string (422); then it is handed to the route unchanged.

Pure ASGI, like the observability middleware, so that streamed answers pass through untouched. The core
knows no domain: authentication is handed in (service/main.py passes the tenants' check).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import HTTPException, status
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.config import Settings, get_settings
from service.core.errors import ServiceError, TooLarge, error_answer
from service.core.hygiene import NotJson, check_json_values, load_json, refuse_control_characters

Authenticate = Callable[[str | None], Awaitable[str]]
"""The bearer token of a request (None without one) -> its tenant id; raises HTTPException 401 otherwise."""

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PUBLIC = re.compile(r"^/(v2|v2/health/.*|metrics)$")
"""Routes that answer without a key (they take no body either)."""
_INFERENCE = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$|^/v1/predict/[^/]+$")
_FORM_OVERHEAD_BYTES = 2**20
"""A form's text fields and part headers, beyond its files' own limits (which the upload reader enforces)."""
_OFFLOAD_BYTES = 64 * 1024
"""JSON bodies larger than this are checked on a worker thread, off the event loop."""


def body_limit(path: str, content_type: str, settings: Settings) -> tuple[int, bool]:
    """The most bytes a request to `path` may send, and whether its body is small JSON to check here."""
    if _INFERENCE.match(path):
        return settings.inference_max_body_bytes, False
    if path == "/v1/models" and content_type.startswith("multipart/"):
        return settings.max_model_bytes + settings.max_weights_bytes + _FORM_OVERHEAD_BYTES, False
    if path == "/v1/datasets" and content_type.startswith("multipart/"):
        return settings.max_dataset_bytes + _FORM_OVERHEAD_BYTES, False
    return settings.max_json_body_bytes, True


class RequestGuard:
    def __init__(self, app: ASGIApp, authenticate: Authenticate) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            _check_target(path, scope["query_string"])
            if scope["method"] in _BODY_METHODS:
                if not _PUBLIC.match(path):
                    tenant_id = await self.authenticate(bearer_token(headers.get("authorization")))
                    # The route's own check finds it here rather than asking again (service/tenants/dependencies.py).
                    scope.setdefault("state", {})["tenant_id"] = tenant_id
                receive = await self._guard_body(path, headers, receive)
        except (ServiceError, HTTPException) as error:
            # The body the client may still be sending is never read: the connection closes after the answer.
            response = error_answer(Request(scope), error)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _guard_body(self, path: str, headers: dict[str, str], receive: Receive) -> Receive:
        limit, small_json = body_limit(path, headers.get("content-type", "").lower(), get_settings())
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(_too_large(limit, f"Content-Length says {int(declared):,}"))
        limited = _limited(receive, limit)
        if not small_json:
            return limited
        body = await _read_all(limited)
        if body:
            await _check_json(body)
        return _replay(body, receive)


def _check_target(path: str, query_string: bytes) -> None:
    refuse_control_characters(path, "the path")
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        refuse_control_characters(key, "a query parameter's name")
        refuse_control_characters(value, f"the query parameter '{key}'")


def bearer_token(authorization: str | None) -> str | None:
    """The key of `Authorization: Bearer <key>`, as FastAPI's HTTPBearer reads it; None for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _too_large(limit: int, how: str) -> str:
    return f"the request body is larger than this route's limit of {limit:,} bytes ({how}): send less"


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive`, raising 413 as soon as the body passes `limit` bytes, whatever Content-Length said."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # An HTTPException: FastAPI's body parsing lets it through, and its handler renders the 413.
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _too_large(limit, "while it streamed"))
        return message

    return limited_receive


async def _read_all(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _check_json(body: bytes) -> None:
    if len(body) > _OFFLOAD_BYTES:
        await run_in_threadpool(_check_json_now, body)
    else:
        _check_json_now(body)


def _check_json_now(body: bytes) -> None:
    try:
        parsed = load_json(body)
    except NotJson:
        return  # not JSON (or not meant as JSON): the route's parser answers in its own words
    check_json_values(parsed)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the route the body read here, then whatever comes next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
