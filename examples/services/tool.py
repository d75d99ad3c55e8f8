"""The tool service: called by the API service once per turn.

It has its own middleware and the same ``NEATLOGS_SECRET_KEY`` as the API
service, so the signed session token the caller sends binds the caller's
session here; FastAPI continues the caller's trace from ``traceparent``.

    NEATLOGS_ENDPOINT=http://127.0.0.1:4318 NEATLOGS_SECRET_KEY=... \\
        uvicorn tool:app --app-dir examples/services --port 8002
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware

neatlogs_web.init(
    workflow_name="example-tool",
    exporter=None if os.environ.get("NEATLOGS_ENDPOINT") else "console",
    schedule_delay_ms=200,
)

app = FastAPI(title="neatlogs_web example tool service")
# No secret_key argument: NEATLOGS_SECRET_KEY, shared with the API service.
app.add_middleware(NeatlogsSessionMiddleware, exclude_paths=["/healthz"])


class ToolCall(BaseModel):
    text: str


@app.post("/tools/word_count")
async def word_count(call: ToolCall) -> dict[str, int | str | None]:
    with neatlogs_web.trace("tool", tool="word_count"):
        return {"words": len(call.text.split()), "session_id": neatlogs_web.current_session_id()}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
