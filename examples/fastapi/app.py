"""A small multi-user chat server traced with neatlogs_web (FastAPI, ASGI).

Each message is one ``trace("turn")`` with child spans for retrieval (run in
the thread pool), the LLM call (streamed to the client as server-sent events)
and a tool step; a background task traces a summary after the response.
``/ws`` is the same chat over a WebSocket: each text message is a turn in the
session of the handshake (cookie or signed header), answered with one message
per word and a final ``[DONE] <n> words``.
``/`` serves a chat page (``static/``) that keeps each browser tab's signed
session token in ``sessionStorage`` and sends it in the session header, with
the helper the package ships (served at ``/neatlogs-session.js``). Under each
answer, thumbs up / down judge that answer's turn (``feedback=True``: each
streamed answer names its turn in a ``feedback`` event, and
``POST /neatlogs/feedback`` records the judgment in the turn's trace).

    NEATLOGS_ENDPOINT=http://127.0.0.1:4318 uvicorn app:app --app-dir examples/fastapi

Without NEATLOGS_ENDPOINT spans are printed to the console.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import BackgroundTasks, FastAPI, WebSocket
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.frontend import script_endpoint

neatlogs_web.init(
    workflow_name="example-chat",
    exporter=None if os.environ.get("NEATLOGS_ENDPOINT") else "console",
    schedule_delay_ms=200,
)

app = FastAPI(title="neatlogs_web example chat")
app.add_middleware(
    NeatlogsSessionMiddleware,
    secret_key=os.environ.get("NEATLOGS_SECRET_KEY", "example-only-secret-change-me"),
    conversation_paths=["/chat/{conversation_id}"],
    # A conversation's turns are judged in it: POST /neatlogs/feedback?conversation_id=...
    conversation_query="conversation_id",
    exclude_paths=["/", "/healthz", "/static/*", "/neatlogs-session.js"],
    feedback=True,  # each reply names its turn; POST /neatlogs/feedback judges it
)


STATIC = Path(__file__).resolve().parent / "static"
app.mount("/static", StaticFiles(directory=STATIC), name="static")
app.add_route("/neatlogs-session.js", script_endpoint, include_in_schema=False)


class ChatMessage(BaseModel):
    message: str


def retrieve(message: str) -> list[str]:
    """Blocking retrieval, run in the thread pool: the session follows it there."""
    with neatlogs_web.trace("retrieval", kind="retriever", input=message):
        return [f"doc about {word}" for word in message.split()[:3]]


async def fake_llm(message: str, documents: list[str]) -> AsyncIterator[str]:
    with neatlogs_web.trace("llm", kind="llm", input=message, documents=len(documents)):
        words = f"You said: {message}".split()
        for word in words:
            await asyncio.sleep(0.002)
            yield word
        neatlogs_web.set_output(" ".join(words))
        neatlogs_web.set_usage(
            prompt_tokens=len(message.split()), completion_tokens=len(words), model="fake-llm"
        )


def summarise(message: str) -> None:
    """A background task: runs after the response, still in the request's session."""
    with neatlogs_web.trace("summarise", message=message):
        pass


async def reply(message: str) -> AsyncIterator[tuple[str, str]]:
    """One turn, as (event, data) pairs: the answer's words, then the turn's name."""
    with neatlogs_web.trace("turn", input=message):
        documents = await run_in_threadpool(retrieve, message)
        answer = []
        async for word in fake_llm(message, documents):
            answer.append(word)
            yield "message", word
        with neatlogs_web.trace("tool", kind="tool", tool="word_count"):
            count = len(message.split())
        neatlogs_web.set_output(" ".join(answer))
        # The headers went out before the turn began: the answer names its turn.
        token = neatlogs_web.feedback_token()
        if token is not None:
            yield "feedback", token
        yield "message", f"[DONE] {count} words"


async def server_sent_events(message: str) -> AsyncIterator[str]:
    async for event, data in reply(message):
        yield f"data: {data}\n\n" if event == "message" else f"event: {event}\ndata: {data}\n\n"


def chat_response(body: ChatMessage, background: BackgroundTasks) -> StreamingResponse:
    background.add_task(summarise, body.message)
    return StreamingResponse(
        server_sent_events(body.message), media_type="text/event-stream", background=background
    )


@app.post("/chat")
async def chat(body: ChatMessage, background: BackgroundTasks) -> StreamingResponse:
    """A turn in the caller's session (cookie or signed header)."""
    return chat_response(body, background)


@app.post("/chat/{conversation_id}")
async def chat_in_conversation(
    conversation_id: str, body: ChatMessage, background: BackgroundTasks
) -> StreamingResponse:
    """A turn in the conversation named by the path: the conversation is the session."""
    return chat_response(body, background)


@app.websocket("/ws")
async def chat_socket(websocket: WebSocket) -> None:
    """Turns over a WebSocket: the handshake's session covers every message.

    It sends the answer's words only; the Django example's socket also names
    each turn, for thumbs under its answers."""
    await websocket.accept()
    async for message in websocket.iter_text():
        async for event, data in reply(message):
            if event == "message":
                await websocket.send_text(data)


@app.get("/session")
async def current_session() -> dict[str, str | None]:
    return {"session_id": neatlogs_web.current_session_id()}


@app.get("/", include_in_schema=False)
async def chat_page() -> FileResponse:
    """A chat page that keeps each tab's session token in sessionStorage."""
    return FileResponse(STATIC / "index.html")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
