"""The same small app over ASGI (Starlette) and WSGI (Flask), for middleware tests.

Routes:
  GET  /whoami            the bound session id, inside a trace("turn")
  POST /chat/{conv}       same, for conversation-path sessions
  POST /json              same, for JSON-body sessions
  GET  /stream            3 chunks, each traced while the body streams
  GET  /fail              raises inside a trace
  GET  /healthz           excluded from sessions
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import httpx

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiMiddleware
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiMiddleware

SECRET = "test-secret-key"
#: The session header the middlewares read and echo, as a client sends it.
HEADER = "x-neatlogs-session-id"
DEFAULT_OPTIONS: dict[str, Any] = {
    "conversation_paths": ["/chat/{conversation_id}"],
    "conversation_json_field": "conversation_id",
    "exclude_paths": ["/healthz"],
}


def _whoami() -> dict[str, str | None]:
    with neatlogs_web.trace("turn"):
        return {"session_id": neatlogs_web.current_session_id()}


def make_asgi_app(**options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse(_whoami())

    async def json_route(request: Request) -> JSONResponse:
        body = await request.body()
        result = _whoami()
        result["body_length"] = str(len(body))
        return JSONResponse(result)

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for index in range(3):
                await asyncio.sleep(0.001)
                with neatlogs_web.trace(f"chunk_{index}"):
                    yield (neatlogs_web.current_session_id() or "-") + "\n"

        def in_background() -> None:
            with neatlogs_web.trace("background"):
                pass

        return StreamingResponse(chunks(), background=BackgroundTask(in_background))

    async def threadpool(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(_whoami))

    async def fail(request: Request) -> JSONResponse:
        with neatlogs_web.trace("failing"):
            raise RuntimeError("handler failed")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"session_id": neatlogs_web.current_session_id()})

    async def websocket_chat(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            with neatlogs_web.trace("ws_turn", message=text):
                await websocket.send_text(neatlogs_web.current_session_id() or "-")

    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/chat/{conversation_id}", whoami, methods=["POST"]),
            Route("/json", json_route, methods=["POST"]),
            Route("/stream", stream),
            Route("/threadpool", threadpool),
            Route("/fail", fail),
            Route("/healthz", healthz),
            WebSocketRoute("/ws", websocket_chat),
        ]
    )
    app.add_middleware(AsgiMiddleware, **{"secret_key": SECRET, **DEFAULT_OPTIONS, **options})
    return app


class ClosingBody:
    """A WSGI body that records that close() ran, and in which session."""

    closed_with: ClassVar[list[str | None]] = []

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        with neatlogs_web.trace("chunk"):
            return chunk + (neatlogs_web.current_session_id() or "-").encode() + b"\n"

    def close(self) -> None:
        ClosingBody.closed_with.append(neatlogs_web.current_session_id())


def make_wsgi_app(**options: Any) -> Any:
    from flask import Flask, Response, jsonify, request

    app = Flask(__name__)

    @app.get("/whoami")
    def whoami() -> Response:
        return jsonify(_whoami())

    @app.post("/chat/<conversation_id>")
    def chat(conversation_id: str) -> Response:
        return jsonify(_whoami())

    @app.post("/json")
    def json_route() -> Response:
        body = request.get_data()
        result = _whoami()
        result["body_length"] = str(len(body))
        return jsonify(result)

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for index in range(3):
                with neatlogs_web.trace(f"chunk_{index}"):
                    yield (neatlogs_web.current_session_id() or "-") + "\n"

        return Response(chunks())

    @app.get("/fail")
    def fail() -> Response:
        with neatlogs_web.trace("failing"):
            raise RuntimeError("handler failed")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(session_id=neatlogs_web.current_session_id())

    def raw_app(environ: Any, start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/closing":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return ClosingBody([b"a:", b"b:"])
        return app.wsgi_app(environ, start_response)

    return WsgiMiddleware(raw_app, **{"secret_key": SECRET, **DEFAULT_OPTIONS, **options})


def json_body(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.text))


def client_for(kind: str, base_url: str = "http://testserver", **options: Any) -> httpx.Client:
    """An in-process client of the ``"asgi"`` or ``"wsgi"`` app, made with ``options``."""
    if kind == "asgi":
        from starlette.testclient import TestClient

        return TestClient(
            make_asgi_app(**options), base_url=base_url, raise_server_exceptions=False
        )
    return httpx.Client(
        transport=httpx.WSGITransport(app=make_wsgi_app(**options)), base_url=base_url
    )


def cookie_of(response: httpx.Response) -> str:
    """The session cookie's value a response sets."""
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]


class TracedRequests:
    """An app's own ASGI middleware that runs each HTTP request inside a ``trace()``
    block named ``name``, with the keyword arguments ``arguments`` makes of its scope."""

    def __init__(
        self, app: Any, name: str, arguments: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        self.app = app
        self.name = name
        self.arguments = arguments

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with neatlogs_web.trace(self.name, **self.arguments(scope)):
            await self.app(scope, receive, send)
