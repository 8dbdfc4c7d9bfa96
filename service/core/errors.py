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
    return _render(request, error.status_code, error.message, error.problems)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    response = _render(request, error.status_code, str(error.detail))
    response.headers.update(error.headers or {})
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
        detail = jsonable_encoder(error.errors())
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    problems = [_field_problem(item) for item in error.errors()]
    refusal = BadRequest.listing("the request is invalid", problems)
    return _render(request, refusal.status_code, refusal.message, refusal.problems)


def _field_problem(item: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
    return f"{where}: {item.get('msg')}" if where else str(item.get("msg"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
