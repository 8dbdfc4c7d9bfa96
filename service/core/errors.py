"""Errors that the service layer raises and the API turns into HTTP answers.

Business logic raises these without knowing about HTTP status codes' wire format; one handler renders
them: `{"detail": ...}` under /v1 (FastAPI's convention), `{"error": ...}` on the inference routes (/v2,
the Open Inference Protocol's, and /v1/predict). Either carries `problems`, every problem found, when
there is more than one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class ServiceError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    @classmethod
    def listing(cls, subject: str, problems: list[str]) -> Self:
        """One error for every problem found: a lone problem is the message itself; several are counted in
        the message and listed there too, so that a client reading only the message sees them all."""
        if len(problems) == 1:
            return cls(problems[0])
        return cls(f"{subject}: {len(problems)} problems: " + "; ".join(problems), problems)


class BadRequest(ServiceError):
    status_code = status.HTTP_400_BAD_REQUEST


class NotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT


class TooLarge(ServiceError):
    status_code = status.HTTP_413_CONTENT_TOO_LARGE


class Unprocessable(ServiceError):
    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT


class Unavailable(ServiceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


_INFERENCE_PATHS = ("/v2", "/v1/predict/")


def _is_inference(request: Request) -> bool:
    return request.url.path.startswith(_INFERENCE_PATHS)


def _render(request: Request, code: int, message: str, problems: list[str] | None = None) -> JSONResponse:
    body: dict[str, object] = {"error" if _is_inference(request) else "detail": message}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=code)


# Starlette types every handler as taking any Exception; each narrows to the class it is installed for.
async def _service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    return error_answer(request, error)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    response = error_answer(request, error)
    if error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        # Starlette names only the methods of the first route on the path; list those of every route.
        response.headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return response


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> set[str]:
    """Every method that some route answers on this path, as the router itself matches them: routes left
    out of the API docs (/metrics, the dashboard) included."""
    return {
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.routes)
    }


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    if not _is_inference(request):
        # The refused input is echoed back, and JSON has no NaN or Infinity: written as text, they cannot make
        # the answer to a bad request fail in its turn.
        detail = _finite(jsonable_encoder(error.errors()))
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    problems = [_field_problem(item) for item in error.errors()]
    refusal = BadRequest.listing("the request is invalid", problems)
    return _render(request, refusal.status_code, refusal.message, refusal.problems)


def _field_problem(item: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
    return f"{where}: {item.get('msg')}" if where else str(item.get("msg"))


_INFINITY, _NEGATIVE_INFINITY = float("inf"), float("-inf")


def _finite(value: object) -> object:
    """`value` with every non-finite float replaced by its name ("nan", "inf", "-inf")."""
    if isinstance(value, float) and not _NEGATIVE_INFINITY < value < _INFINITY:  # NaN compares false too
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def error_answer(request: Request, error: ServiceError | StarletteHTTPException) -> JSONResponse:
    """The answer the installed handlers give `error`: for checks that answer before any route runs
    (service/core/request_guard.py), in the same wording as the route's own errors."""
    if isinstance(error, ServiceError):
        return _render(request, error.status_code, error.message, error.problems)
    response = _render(request, error.status_code, str(error.detail))
    response.headers.update(error.headers or {})
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
