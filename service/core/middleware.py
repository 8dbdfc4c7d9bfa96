"""One ASGI middleware for what every request gets: a request id (echoed in X-Request-ID), a JSON
access-log line, request metrics by route template, and inference metrics for the inference routes.

Pure ASGI rather than BaseHTTPMiddleware, so that streamed answers (downloads, server-sent events)
pass through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.logs import REQUEST_ID
from service.core.metrics import record_inference, record_request

log = logging.getLogger("fusebox.access")

HEADER = b"x-request-id"
BINARY_JSON_LENGTH = b"inference-header-content-length"
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")
"""What a caller's id may look like to be kept: short, printable, nothing that could forge a log line."""

INFERENCE_ROUTES = frozenset(
    {"/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer", "/v1/predict/{name}"}
)


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
        inference_answer: bytearray | None = None
        json_length: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, inference_answer, json_length
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                message["headers"] = [*headers, (HEADER, request_id.encode())]
                # The router has matched by now; only a successful inference answer is kept, to count its rows.
                if status == 200 and _route(scope) in INFERENCE_ROUTES:
                    inference_answer = bytearray()
                    json_length = _binary_json_length(headers)
            elif message["type"] == "http.response.body" and _still_wanted(inference_answer, json_length):
                inference_answer += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = _route(scope)
            record_request(scope["method"], route, status, seconds)
            if inference_answer is not None:
                _record_inference(bytes(inference_answer[:json_length]), seconds)
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


def _still_wanted(answer: bytearray | None, json_length: int | None) -> bool:
    """Kept until the JSON part is whole: binary tensors after it need not be."""
    return answer is not None and (json_length is None or len(answer) < json_length)


def _binary_json_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """An OIP answer with binary tensors is a JSON header of this length, then raw bytes."""
    for name, value in headers:
        if name.lower() == BINARY_JSON_LENGTH:
            return int(value)
    return None


def _record_inference(answer_json: bytes, seconds: float) -> None:
    """Rows from the answer: one prediction per record, or the batch dimension of the first OIP output
    (its shape is in the JSON part even when the tensors travel as binary data)."""
    try:
        answer = json.loads(answer_json)
        rows = len(answer["predictions"]) if "predictions" in answer else answer["outputs"][0]["shape"][0]
        record_inference(answer["model_name"], answer["model_version"], rows, seconds)
    except (ValueError, KeyError, IndexError, TypeError):
        log.warning("an inference answer of unexpected shape: not counted in the inference metrics")
