"""ASGI variants: a bare Starlette route returning "ok", with each middleware in front.

The driver awaits the app directly in a tight loop on one event loop: no
server, no sockets, so the figures isolate what the middleware itself costs.
The scope is built once per variant and shallow-copied per request (apps
write into it); ``receive`` and ``send`` do nothing.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import references
from benchmarks.harness import Runner, Variant, now
from benchmarks.sink import DiscardingExporter, batch_provider

SECRET = "bench-secret-key"
PATH = "/chat/conv-42"
REQUEST_ID = uuid.UUID(int=0x1234_5678_9ABC_4DEF_8123_4567_89AB_CDEF).hex
BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
)


def make_scope(path: str = PATH, headers: Sequence[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*BASE_HEADERS, *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        # Servers pass a per-request copy of the lifespan state (empty here).
        "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


def asgi_runner(
    app: Any, scope: dict[str, Any], loop: asyncio.AbstractEventLoop, check: bool = True
) -> Runner:
    """``n`` requests awaited back to back on ``loop``; checks the app says "ok" once."""
    if check:
        _check_ok(app, scope, loop)

    async def drive(n: int) -> float:
        receive, send, copy = _receive, _send, scope.copy
        start = now()
        for _ in range(n):
            await app(copy(), receive, send)
        return now() - start

    def run(n: int) -> float:
        return loop.run_until_complete(drive(n))

    return run


def _check_ok(app: Any, scope: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    sent = response_messages(app, scope, loop)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if status != 200 or body != b"ok":
        raise RuntimeError(f"benchmark app answered {status} {body!r}, not 200 'ok'")


def response_messages(
    app: Any, scope: dict[str, Any], loop: asyncio.AbstractEventLoop
) -> list[dict[str, Any]]:
    """What ``app`` sends for one request with (a copy of) ``scope``."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    loop.run_until_complete(app(scope.copy(), _receive, send))
    return sent


def response_headers(
    app: Any, scope: dict[str, Any], loop: asyncio.AbstractEventLoop
) -> list[tuple[bytes, bytes]]:
    """The response headers ``app`` sends for one request."""
    sent = response_messages(app, scope, loop)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return [(bytes(name).lower(), bytes(value)) for name, value in start["headers"]]


def starlette_app(middleware: Sequence[Any] = (), routes: Sequence[Any] = ()) -> Any:
    """A Starlette app whose ``/chat/{conversation_id}`` answers "ok", plus ``routes``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request: Request) -> PlainTextResponse:
        if "session" in request.scope:
            request.session.get("user")
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/chat/{conversation_id}", ok), *routes], middleware=list(middleware)
    )


def ours(**options: Any) -> Any:
    from starlette.middleware import Middleware

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    return Middleware(NeatlogsSessionMiddleware, secret_key=SECRET, **options)


def first_visit_cookie(app: Any, loop: asyncio.AbstractEventLoop, path: str = PATH) -> bytes:
    """The ``name=value`` cookie ``app`` sets on a first visit: what a returning user sends.

    The token comes from a real request through the middleware, so the
    benchmarks need nothing but the public API to play a returning user.
    """
    for name, value in response_headers(app, make_scope(path), loop):
        if name == b"set-cookie":
            return value.split(b";", 1)[0].strip()
    raise RuntimeError("a first visit through the middleware set no cookie")


@functools.cache
def our_cookie() -> bytes:
    """A returning user's ``name=value`` session cookie, signed with ``SECRET``."""
    loop = asyncio.new_event_loop()
    try:
        return first_visit_cookie(starlette_app([ours()]), loop)
    finally:
        loop.close()


def our_token() -> str:
    """The signed session token alone, as the echoed header carries it."""
    return our_cookie().split(b"=", 1)[1].decode("latin-1")


def starlette_session_cookie() -> bytes:
    from itsdangerous import TimestampSigner

    data = base64.b64encode(json.dumps({"user": "u-1"}).encode())
    return b"session=" + TimestampSigner(SECRET).sign(data)


def build(loop: asyncio.AbstractEventLoop) -> list[Variant]:
    """Every ASGI variant; peers are imported only when their variant is built."""

    def variant(
        key: str,
        label: str,
        middleware: Callable[[], Sequence[Any]],
        headers: Callable[[], Sequence[tuple[bytes, bytes]]] = tuple,
        note: str = "",
    ) -> Variant:
        def make() -> Runner:
            return asgi_runner(starlette_app(middleware()), make_scope(PATH, headers()), loop)

        return Variant(key, label, make, baseline=None if key == "bare" else "bare", note=note)

    return [
        variant("bare", "bare Starlette", tuple),
        variant(
            "floor",
            "floor: header -> ContextVar (hand-written)",
            lambda: [_middleware(references.AsgiHeaderFloor)],
            _request_id_header,
        ),
        variant(
            "itsdangerous",
            "itsdangerous verify per request (hand-written)",
            lambda: [_middleware(references.AsgiVerifyEveryRequest, secret=SECRET)],
            _verify_cookie_header,
        ),
        variant(
            "remembered_cookie",
            "signed cookie verified once per Cookie header, remembered (hand-written)",
            lambda: [_middleware(references.AsgiRememberedSignedCookie, secret=SECRET)],
            _verify_cookie_header,
        ),
        variant(
            "contract_floor",
            "the least DESIGN.md asks: remembered cookie, clean start, felt latency (hand-written)",
            lambda: [_middleware(references.AsgiContractFloor, secret=SECRET)],
            _verify_cookie_header,
        ),
        variant(
            "ours_cookie",
            "ours, returning user (cookie)",
            lambda: [ours()],
            lambda: [(b"cookie", our_cookie())],
        ),
        variant(
            "ours_header",
            "ours, signed header",
            lambda: [ours()],
            lambda: [(b"x-neatlogs-session-id", our_token().encode())],
        ),
        variant(
            "ours_conversation",
            "ours, conversation path",
            lambda: [ours(conversation_paths=["/chat/{conversation_id}"])],
        ),
        variant("ours_new", "ours, new session (sign + Set-Cookie)", lambda: [ours()]),
        variant(
            "correlation_id",
            "asgi-correlation-id (header present)",
            lambda: [_middleware(_import("asgi_correlation_id", "CorrelationIdMiddleware"))],
            _request_id_header,
        ),
        variant(
            "correlation_id_new",
            "asgi-correlation-id (no header: generates an id)",
            lambda: [_middleware(_import("asgi_correlation_id", "CorrelationIdMiddleware"))],
        ),
        variant(
            "starlette_context",
            "starlette-context RawContextMiddleware, 1 header plugin",
            _starlette_context,
            _request_id_header,
        ),
        variant(
            "starlette_session",
            "Starlette SessionMiddleware (valid cookie, read by the route)",
            lambda: [
                _middleware(
                    _import("starlette.middleware.sessions", "SessionMiddleware"),
                    secret_key=SECRET,
                )
            ],
            lambda: [(b"cookie", starlette_session_cookie())],
        ),
        variant(
            "otel_asgi",
            "OpenTelemetry ASGI middleware (batch processor)",
            lambda: [
                _middleware(
                    _import("opentelemetry.instrumentation.asgi", "OpenTelemetryMiddleware"),
                    tracer_provider=batch_provider(DiscardingExporter()),
                )
            ],
        ),
    ]


def _verify_cookie_header() -> list[tuple[bytes, bytes]]:
    """The signed cookie the hand-written verify references read."""
    token = references.make_signer(SECRET).sign("returning-user-1")
    return [(b"cookie", f"{references.VERIFY_COOKIE}=".encode() + token)]


def _request_id_header() -> list[tuple[bytes, bytes]]:
    return [(b"x-request-id", REQUEST_ID.encode())]


def _middleware(cls: Any, **options: Any) -> Any:
    from starlette.middleware import Middleware

    return Middleware(cls, **options)


def _import(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _starlette_context() -> list[Any]:
    from starlette_context.middleware import RawContextMiddleware
    from starlette_context.plugins import RequestIdPlugin

    return [_middleware(RawContextMiddleware, plugins=(RequestIdPlugin(),))]
