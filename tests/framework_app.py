"""A FastAPI app that traces every request itself, with requests that run no turn
beside requests that do, for the tests of what reaches a session.

Routes:
  GET  /healthz, /whoami, /flush, /static/logo.txt   no turn: FastAPI's own spans only
  GET  /lookup      no turn, a database call an instrumentation traced
  POST /chat        a turn: ``turn`` with an ``llm`` child; its answer and session
  POST /later       no turn in the handler; a background task runs one after the response
  WS   /ws          each message a turn; answers with the session id
"""

from __future__ import annotations

from pathlib import Path

from fastapi import BackgroundTasks, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.staticfiles import StaticFiles
from opentelemetry.trace import SpanKind, get_tracer

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware

#: Requests that run no turn and call nothing: only FastAPI's own spans happen.
NO_TURN_PATHS = ("/healthz", "/whoami", "/flush", "/static/logo.txt")


def run_turn(text: str) -> str:
    """The README's turn: a ``turn`` with the conversation, an ``llm`` child."""
    with neatlogs_web.trace("turn", input=text):
        with neatlogs_web.trace("llm", kind="llm"):
            neatlogs_web.set_usage(prompt_tokens=3, completion_tokens=4, model="m")
        reply = f"re: {text}"
        neatlogs_web.set_output(reply)
    return reply


def fake_db_call() -> None:
    """What a database instrumentation records: a client span of the app's work."""
    with get_tracer("tests.fake_db").start_as_current_span("SELECT users", kind=SpanKind.CLIENT):
        pass


def make_app(static: Path) -> FastAPI:
    """The app, serving ``static`` (where ``logo.txt`` is written) under ``/static``."""
    (static / "logo.txt").write_text("a logo")
    app = FastAPI()  # its own telemetry on, as by default
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="framework-app-secret")
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"session_id": neatlogs_web.current_session_id()}

    @app.get("/flush")
    async def flush() -> dict[str, bool]:
        return {"flushed": True}

    @app.get("/lookup")
    def lookup() -> dict[str, str | None]:
        fake_db_call()
        return {"session_id": neatlogs_web.current_session_id()}

    @app.post("/chat")
    async def chat(body: dict[str, str]) -> dict[str, str | None]:
        return {"answer": run_turn(body["text"]), "session_id": neatlogs_web.current_session_id()}

    @app.post("/later")
    async def later(body: dict[str, str], background: BackgroundTasks) -> dict[str, str | None]:
        background.add_task(run_turn, body["text"])
        return {"session_id": neatlogs_web.current_session_id()}

    @app.websocket("/ws")
    async def chat_socket(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                run_turn(await websocket.receive_text())
                await websocket.send_text(neatlogs_web.current_session_id() or "")
        except WebSocketDisconnect:
            return

    return app
