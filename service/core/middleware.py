"""One ASGI middleware for what every request gets: a request id (echoed in X-Request-ID), a JSON
access-log line and request metrics by route template. (Inference metrics are recorded by the inference
service, which knows the rows without reading the answer back.)

Pure ASGI rather than BaseHTTPMiddleware, so that streamed answers (downloads, server-sent events)
pass through untouched.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.logs import REQUEST_ID
from service.core.metrics import record_request

log = logging.getLogger("fusebox.access")

HEADER = b"x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")
"""What a caller's id may look like to be kept: short, printable, nothing that could forge a log line."""


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception escaped it

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = _route(scope)
            record_request(scope["method"], route, status, seconds)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
            REQUEST_ID.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER:
            given = value.decode("latin-1")
            return given if _SANE_ID.match(given) else uuid.uuid4().hex
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """The matched route's template; one label for every path that matched none."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
