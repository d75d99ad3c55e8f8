"""The API service: a chat turn per request, calling the tool service.

The httpx client is set up once with ``propagate()``: each call to the tool
service carries the turn's session (signed) and ``traceparent``, so the tool
service's spans land in this user's session and link to this turn's trace.

    NEATLOGS_ENDPOINT=http://127.0.0.1:4318 NEATLOGS_SECRET_KEY=... \\
        TOOL_URL=http://127.0.0.1:8002 uvicorn api:app --app-dir examples/services --port 8001
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.integrations.httpx import propagate

neatlogs_web.init(
    workflow_name="example-api",
    exporter=None if os.environ.get("NEATLOGS_ENDPOINT") else "console",
    schedule_delay_ms=200,
)

TOOL_URL = httpx.URL(os.environ.get("TOOL_URL", "http://127.0.0.1:8002"))
tools = propagate(
    httpx.AsyncClient(base_url=TOOL_URL, timeout=10.0),
    allowed_hosts=[f"{TOOL_URL.host}:{TOOL_URL.port}"],
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await tools.aclose()


app = FastAPI(title="neatlogs_web example API service", lifespan=lifespan)
app.add_middleware(
    NeatlogsSessionMiddleware,
    conversation_paths=["/chat/{conversation_id}"],
    exclude_paths=["/healthz"],
)


class ChatMessage(BaseModel):
    message: str


async def turn(message: str) -> dict[str, object]:
    with neatlogs_web.trace("turn", input=message):
        with neatlogs_web.trace("call_tool", kind="tool", tool="word_count"):
            response = await tools.post("/tools/word_count", json={"text": message})
            response.raise_for_status()
        answer = f"{response.json()['words']} words"
        neatlogs_web.set_output(answer)
        return {"reply": answer, "tool": response.json()}


@app.post("/chat")
async def chat(body: ChatMessage) -> dict[str, object]:
    """A turn in the caller's session (cookie or signed header)."""
    return await turn(body.message)


@app.post("/chat/{conversation_id}")
async def chat_in_conversation(conversation_id: str, body: ChatMessage) -> dict[str, object]:
    """A turn in the conversation named by the path."""
    return await turn(body.message)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
