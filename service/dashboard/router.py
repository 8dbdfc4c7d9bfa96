"""`/`: the dashboard page; `/dashboard/...`: its files. Neither needs an API key (the page asks for one)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.core.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
HEADERS = {
    # Everything comes from this origin: no CDN, no inline script, no framing.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@lru_cache
def assets() -> dict[str, Path]:
    """The files the dashboard may serve, by URL path: a fixed list, so no request can reach beyond it."""
    return {
        path.relative_to(STATIC).as_posix(): path
        for path in sorted(STATIC.rglob("*"))
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


def _file(name: str) -> FileResponse:
    path = assets().get(name)
    if path is None:
        raise NotFound(f"the dashboard has no file '{name}'")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
def index() -> FileResponse:
    return _file("index.html")


@router.get("/dashboard/{name:path}")
def asset(name: str) -> FileResponse:
    return _file(name)
