"""The collector as one Starlette app: OTLP receiver, JSON API and the timeline page."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .api import Api
from .hosts import HostCheck
from .receiver import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SPANS, TraceReceiver
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
    host: str | None = None,
    allowed_hosts: Iterable[str] = (),
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_spans: int = DEFAULT_MAX_SPANS,
) -> Starlette:
    """Build the collector over `store`, which the caller opens and closes.

    Requests are answered only when their `Host` names the collector: a loopback name,
    `host` (the address it was started on), one of `allowed_hosts`, or the address the
    connection arrived on; anything else is 403 (DNS rebinding protection).

    `api_key`, when set, is required in the `x-api-key` header of every export; the page
    and the JSON API stay open, as the collector binds loopback unless told otherwise.
    One export may carry at most `max_body_bytes` (also once decompressed) and
    `max_spans` spans.
    """
    receiver = TraceReceiver(
        store, api_key=api_key, max_body_bytes=max_body_bytes, max_spans=max_spans
    )
    routes = [
        Route("/v1/traces", receiver.handle, methods=["POST"]),
        *Api(store).routes(),
        Route("/", _page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    hosts = [*([host] if host else []), *allowed_hosts]
    return Starlette(
        routes=routes,
        middleware=[Middleware(HostCheck, hosts=hosts)],
        exception_handlers={HTTPException: _http_error},
    )


async def _page(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) as JSON where machines call, as text elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(("/api/", "/v1/")):
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)
