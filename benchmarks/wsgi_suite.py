"""WSGI variants: a bare Flask route, with each middleware around ``app.wsgi_app``.

The driver calls the WSGI app directly, consumes the response iterable and
closes it as a server would. The environ is built once per variant and
copied per request (apps write into it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks import references
from benchmarks.asgi_suite import REQUEST_ID, SECRET, our_cookie
from benchmarks.harness import Runner, Variant, now
from benchmarks.sink import DiscardingExporter, batch_provider

PATH = "/chat/conv-42"
STREAM_PATH = "/stream/conv-42"
BASE_HEADERS = {
    "Host": "127.0.0.1:8000",
    "User-Agent": "bench/1.0",
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
}


def make_environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    return EnvironBuilder(
        path=path, headers=list({**BASE_HEADERS, **headers}.items())
    ).get_environ()


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def _write(data: bytes) -> None:
    return None


def wsgi_runner(app: Any, environ: dict[str, Any], expected: bytes) -> Runner:
    """``n`` requests back to back, each body consumed and closed."""
    _check(app, environ, expected)

    def run(n: int) -> float:
        start_response, copy = _start_response, environ.copy
        start = now()
        for _ in range(n):
            result = app(copy(), start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return now() - start

    return run


def _check(app: Any, environ: dict[str, Any], expected: bytes) -> None:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return _write

    result = app(environ.copy(), start_response)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    if not statuses or not statuses[0].startswith("200") or body != expected:
        raise RuntimeError(f"benchmark app answered {statuses} {body!r}, not 200 {expected!r}")


def flask_app(secret_key: str | None = None) -> Any:
    from flask import Flask, Response, session

    app = Flask("bench")
    if secret_key is not None:
        app.secret_key = secret_key

    @app.get("/chat/<conversation_id>")
    def ok(conversation_id: str) -> str:
        session.get("user")
        return "ok"

    @app.get("/stream/<conversation_id>")
    def stream(conversation_id: str) -> Response:
        def chunks() -> Iterator[str]:
            yield from ("a", "b", "c")

        return Response(chunks())

    return app


def flask_session_cookie(app: Any) -> str:
    serializer = app.session_interface.get_signing_serializer(app)
    return "session=" + str(serializer.dumps({"user": "u-1"}))


def build() -> list[Variant]:
    """Every WSGI variant; peers are imported only when their variant is built."""

    def variant(
        key: str,
        label: str,
        wrap: Callable[[Any], Any],
        headers: Callable[[], dict[str, str]] = dict,
        *,
        path: str = PATH,
        baseline: str | None = "bare",
        secret_key: str | None = None,
        session_cookie: bool = False,
    ) -> Variant:
        def make() -> Runner:
            app = flask_app(secret_key)
            app.wsgi_app = wrap(app.wsgi_app)
            request_headers = headers()
            if session_cookie:
                request_headers["Cookie"] = flask_session_cookie(app)
            expected = b"abc" if path == STREAM_PATH else b"ok"
            return wsgi_runner(app, make_environ(path, request_headers), expected)

        return Variant(key, label, make, baseline=baseline)

    cookie = lambda: {"Cookie": our_cookie().decode("latin-1")}  # noqa: E731
    return [
        variant("bare", "bare Flask", _same, baseline=None),
        variant(
            "floor",
            "floor: header -> ContextVar (hand-written)",
            references.WsgiHeaderFloor,
            lambda: {"X-Request-Id": REQUEST_ID},
        ),
        variant("ours_cookie", "ours, returning user (cookie)", _ours, cookie),
        variant(
            "bare_stream",
            "bare Flask, 3-chunk streamed body",
            _same,
            path=STREAM_PATH,
            baseline=None,
        ),
        variant(
            "ours_stream",
            "ours, returning user, 3-chunk streamed body",
            _ours,
            cookie,
            path=STREAM_PATH,
            baseline="bare_stream",
        ),
        variant(
            "flask_session",
            "Flask session (valid cookie, read by the route)",
            _same,
            secret_key=SECRET,
            session_cookie=True,
        ),
        variant("otel_wsgi", "OpenTelemetry WSGI middleware (batch processor)", _otel),
    ]


def _same(app: Any) -> Any:
    return app


def _ours(app: Any) -> Any:
    from neatlogs_web.wsgi import NeatlogsSessionMiddleware

    return NeatlogsSessionMiddleware(app, secret_key=SECRET)


def _otel(app: Any) -> Any:
    middleware = importlib.import_module("opentelemetry.instrumentation.wsgi")
    return middleware.OpenTelemetryMiddleware(
        app, tracer_provider=batch_provider(DiscardingExporter())
    )
