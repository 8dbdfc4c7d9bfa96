"""The service's logs, the API's and the workers': one JSON object per line, each carrying the id of the
request it was written for.

Fields: time, level, logger, message, and request_id when there is a request; the access line adds
method, route (the template, e.g. /v1/models/{model_id}), path, status and duration_ms. The level comes
from FUSEBOX_LOG_LEVEL (default INFO).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("fusebox_request_id", default=None)
"""Set for the time of one request; FastAPI copies it into the threads that run sync routes."""

REQUEST_FIELDS = ("method", "route", "path", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update({name: record.__dict__[name] for name in REQUEST_FIELDS if name in record.__dict__})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    """JSON lines on stderr for everything, uvicorn's and Celery's own loggers included; uvicorn's access line
    is replaced by the middleware's, which knows the route template and the request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(os.environ.get("FUSEBOX_LOG_LEVEL", "INFO").upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # As uvicorn --no-access-log leaves it: with no handler, uvicorn does not even build its line's arguments.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
