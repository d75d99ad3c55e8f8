"""The collector as one Starlette app: OTLP receiver, JSON API and the timeline page."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .api import Api
from .receiver import DEFAULT_MAX_BODY_BYTES, TraceReceiver
from .store import Store

STATIC_DIR = Path(__file__).parent / "static"

# The page loads only its own files: no inline script or style, nothing from elsewhere.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def create_app(
    store: Store,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """Build the collector over `store`, which the caller opens and closes.

    `api_key`, when set, is required in the `x-api-key` header of every export; the page
    and the JSON API stay open, as the collector binds loopback unless told otherwise.
    """
    receiver = TraceReceiver(store, api_key=api_key, max_body_bytes=max_body_bytes)
    routes = [
        Route("/v1/traces", receiver.handle, methods=["POST"]),
        *Api(store).routes(),
        Route("/", _page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) as JSON where machines call, as text elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(("/api/", "/v1/")):
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)
