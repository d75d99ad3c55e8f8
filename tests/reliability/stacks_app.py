"""The app the isolation matrix serves, composed as users compose theirs.

One ASGI process serves the same FastAPI routes four times over, one stack
per path prefix, so a server starts once per row of the matrix:

  /plain/...         our middleware alone
  /base-inside/...   ``@app.middleware("http")`` (BaseHTTPMiddleware) inside ours
  /base-outside/...  ours inside ``@app.middleware("http")``
  /gzip/...          ``GZipMiddleware`` outside ours

The WSGI app (Flask) serves the same routes under ``/plain`` (WSGI has no
BaseHTTPMiddleware; background tasks and WebSockets are ASGI features).

Every span a route starts names its client (``client`` attribute, from the
``c`` query parameter), so the matrix can tell whose session it should carry.
Routes, all under a stack prefix:

  GET  /whoami     the bound session id, traced
  GET  /stream     3 traced chunks, then a traced background task (ASGI)
  GET  /threadpool traced work in the thread pool
  GET  /fail       raises inside a trace: a 500
  GET  /abandon    streams until the client leaves; ``finally:`` traces
                   ``abandoned`` with the session it sees (an async generator
                   on ASGI, a plain one on WSGI)
  GET  /abandon-sync  the same over a plain generator (ASGI: the thread pool)
  GET  /collect    runs the cyclic garbage collector inside this request
  WS   /ws         one traced turn per text message (ASGI)

Automatic garbage collection is off (``STACKS_GC=auto`` turns it back on), so
an abandoned stream is collected exactly when another client's ``/collect``
runs, inside that client's request: the moment the session could go astray.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, BackgroundTasks, FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse
from flask import Flask, Response, jsonify, request
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiSessions
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessions

if os.environ.get("STACKS_GC") != "auto":
    gc.disable()

neatlogs_web.init(workflow_name="stacks", schedule_delay_ms=50, flush_on_sigterm=False)
SECRET = os.environ.get("NEATLOGS_SECRET_KEY", "stacks-matrix")
STACKS = ("plain", "base-inside", "base-outside", "gzip")
#: /abandon sends 16 MB at most: more than the socket buffers between client
#: and server hold, so the server is still sending when the client leaves.
ABANDON_CHUNKS = 1000
PADDING = " " * 16_384

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def _traced(name: str, client: str) -> str | None:
    with neatlogs_web.trace(name, client=client):
        return neatlogs_web.current_session_id()


def _forever(client: str) -> Iterator[str]:
    """A body the client leaves mid-way; its ``finally:`` traces the session it sees."""
    try:
        for index in range(ABANDON_CHUNKS):
            yield f"{index}\n" + PADDING + "\n"
    finally:
        with neatlogs_web.trace("abandoned", client=client, stream="sync") as span:
            span.set_attribute("seen_session", neatlogs_web.current_session_id() or "")


def _make_fastapi(stack: str) -> Any:
    router = APIRouter(prefix=f"/{stack}")

    @router.get("/whoami")
    async def whoami(c: str) -> dict[str, str | None]:
        return {"session_id": _traced("whoami", c)}

    @router.get("/stream")
    async def stream(c: str, background: BackgroundTasks) -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for index in range(3):
                await asyncio.sleep(0.001)
                with neatlogs_web.trace("chunk", client=c, index=index):
                    # Long enough for GZipMiddleware to compress it.
                    yield (neatlogs_web.current_session_id() or "-") + " " * 600 + "\n"

        background.add_task(_traced, "background", c)
        return StreamingResponse(chunks(), media_type="text/plain", background=background)

    @router.get("/threadpool")
    async def threadpool(c: str) -> dict[str, str | None]:
        return {"session_id": await run_in_threadpool(_traced, "threadpool", c)}

    @router.get("/fail")
    async def fail(c: str) -> None:
        with neatlogs_web.trace("fail", client=c):
            raise RuntimeError("the handler failed")

    @router.get("/abandon")
    async def abandon(c: str) -> StreamingResponse:
        async def forever() -> AsyncIterator[str]:
            try:
                # Chunks already at hand (a cached answer, a buffered model
                # stream): the generator never awaits, so it waits at ``yield``
                # while the server's send waits for the client.
                for index in range(ABANDON_CHUNKS):
                    yield f"{index}\n" + PADDING + "\n"
            finally:
                with neatlogs_web.trace("abandoned", client=c, stream="async") as span:
                    span.set_attribute("seen_session", neatlogs_web.current_session_id() or "")

        return StreamingResponse(forever(), media_type="text/plain")

    @router.get("/abandon-sync")
    async def abandon_sync(c: str) -> StreamingResponse:
        # A plain generator: Starlette iterates it in the thread pool.
        return StreamingResponse(_forever(c), media_type="text/plain")

    @router.get("/collect")
    async def collect(c: str) -> dict[str, int]:
        with neatlogs_web.trace("collect", client=c):
            return {"collected": gc.collect()}

    @router.websocket("/ws")
    async def ws(websocket: WebSocket, c: str) -> None:
        await websocket.accept()
        async for _text in websocket.iter_text():
            await websocket.send_text(_traced("ws", c) or "-")

    app = FastAPI()
    app.include_router(router)

    async def passthrough(request: Request, call_next: Any) -> Any:
        return await call_next(request)

    # Starlette wraps the last middleware added around the others.
    ours: dict[str, Any] = {"secret_key": SECRET}
    if stack == "base-inside":
        app.middleware("http")(passthrough)
        app.add_middleware(AsgiSessions, **ours)
    elif stack == "base-outside":
        app.add_middleware(AsgiSessions, **ours)
        app.middleware("http")(passthrough)
    elif stack == "gzip":
        app.add_middleware(AsgiSessions, **ours)
        app.add_middleware(GZipMiddleware, minimum_size=100)
    else:
        app.add_middleware(AsgiSessions, **ours)
    return app


_ASGI_STACKS: dict[str, ASGIApp] = {stack: _make_fastapi(stack) for stack in STACKS}


async def asgi_app(scope: Scope, receive: Any, send: Any) -> None:
    """Route to a stack by the first path segment; answer ``/healthz`` here."""
    if scope["type"] == "lifespan":
        # One stack gets the lifespan: ours flushes at shutdown.
        await _ASGI_STACKS["plain"](scope, receive, send)
        return
    if scope["type"] == "http" and scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    stack = _ASGI_STACKS.get(scope["path"].split("/", 2)[1])
    if stack is None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return
    await stack(scope, receive, send)


def _make_flask() -> Any:
    app = Flask(__name__)
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stacks")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.get("/plain/whoami")
    def whoami() -> Response:
        return jsonify(session_id=_traced("whoami", request.args["c"]))

    @app.get("/plain/stream")
    def stream() -> Response:
        c = request.args["c"]

        def chunks() -> Iterator[str]:
            for index in range(3):
                with neatlogs_web.trace("chunk", client=c, index=index):
                    yield (neatlogs_web.current_session_id() or "-") + " " * 600 + "\n"

        return Response(chunks(), mimetype="text/plain")

    @app.get("/plain/threadpool")
    def threadpool() -> Response:
        work = neatlogs_web.with_current_session(_traced)
        return jsonify(session_id=pool.submit(work, "threadpool", request.args["c"]).result())

    @app.get("/plain/fail")
    def fail() -> Response:
        with neatlogs_web.trace("fail", client=request.args["c"]):
            raise RuntimeError("the handler failed")

    @app.get("/plain/abandon")
    def abandon() -> Response:
        return Response(_forever(request.args["c"]), mimetype="text/plain")

    @app.get("/plain/collect")
    def collect() -> Response:
        with neatlogs_web.trace("collect", client=request.args["c"]):
            return jsonify(collected=gc.collect())

    return WsgiSessions(app.wsgi_app, secret_key=SECRET, exclude_paths=["/healthz"])


wsgi_app = _make_flask()
