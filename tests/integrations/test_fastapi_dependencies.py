"""FastAPI dependencies bind a conversation after routing, for the whole request.

The middleware here knows no conversation templates: the session it
resolves (a new one, from the cookie) is replaced by the route's parameter,
and the streamed body, the background tasks and sync endpoints run in the
thread pool all carry the rebound session, as do FastAPI's own spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.integrations.fastapi import CurrentSession, bind_session_from, current_session
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn

BindConversation = Depends(bind_session_from("conversation_id"))


class Message(BaseModel):
    text: str


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="k")

    def in_background(label: str) -> None:
        with neatlogs_web.trace(label):
            pass

    @app.post("/chat/{conversation_id}/stream", dependencies=[BindConversation])
    async def stream(
        conversation_id: str, message: Message, background: BackgroundTasks
    ) -> StreamingResponse:
        background.add_task(in_background, f"background-{message.text}")

        async def chunks() -> AsyncIterator[str]:
            with neatlogs_web.trace(f"turn-{message.text}"):
                for index in range(3):
                    await asyncio.sleep(0.001)
                    with neatlogs_web.trace(f"chunk-{message.text}-{index}"):
                        yield f"{neatlogs_web.current_session_id()}\n"

        return StreamingResponse(chunks(), background=background)

    @app.post("/chat/{conversation_id}/sync")
    def sync_turn(
        message: Message, session_id: str | None = BindConversation
    ) -> dict[str, str | None]:
        with neatlogs_web.trace(f"sync-{message.text}"):
            return {"returned": session_id, "current": neatlogs_web.current_session_id()}

    @app.get("/search", dependencies=[Depends(bind_session_from("conv", source="query"))])
    async def search(session_id: CurrentSession) -> dict[str, str | None]:
        with neatlogs_web.trace("search"):
            return {"session_id": session_id}

    @app.get("/by-header")
    async def by_header(
        session_id: str | None = Depends(bind_session_from("X-Conversation", source="header")),
    ) -> dict[str, str | None]:
        with neatlogs_web.trace("by-header"):
            return {"session_id": session_id}

    @app.post("/by-body", dependencies=[Depends(bind_session_from(source="body"))])
    async def by_body(
        message: Message, session_id: str | None = Depends(current_session)
    ) -> dict[str, str | None]:
        with neatlogs_web.trace("by-body"):
            return {"session_id": session_id, "text": message.text}

    return app


def test_streamed_body_background_tasks_and_sync_endpoints_keep_the_rebound_session(
    tracing: OTLPReceiver,
) -> None:
    with run_uvicorn(make_app()) as base, httpx.Client(base_url=base, timeout=30) as http:
        cookie_session = http.get("/search").json()["session_id"]
        body = http.post("/chat/conv-a/stream", json={"text": "a"}).text
        assert body.split() == ["conv-a"] * 3
        sync = http.post("/chat/conv-b/sync", json={"text": "b"}).json()
        assert sync == {"returned": "conv-b", "current": "conv-b"}
        # The cookie's session is untouched for routes that do not rebind.
        assert http.get("/search").json()["session_id"] == cookie_session
    neatlogs_web.flush()
    expected = {
        **dict.fromkeys(["turn-a", "background-a", *(f"chunk-a-{i}" for i in range(3))], "conv-a"),
        "sync-b": "conv-b",
    }
    spans = tracing.wait_for(lambda s: expected.keys() <= {x.name for x in s})
    ours = [s for s in spans if s.scope == "neatlogs_web"]
    sessions = {s.name: s.attributes["session.id"] for s in ours if s.name in expected}
    assert sessions == expected
    # FastAPI's request spans carry the turns, in the rebound sessions.
    server = {s.attributes["http.route"]: s for s in spans if s.scope == "fastapi" and s.kind == 2}
    stream = server["/chat/{conversation_id}/stream"]
    assert stream.attributes["session.id"] == "conv-a"
    assert stream.name == "POST /chat/{conversation_id}/stream"
    sync_turn = server["/chat/{conversation_id}/sync"]
    assert (sync_turn.name, sync_turn.attributes["session.id"]) == (
        "POST /chat/{conversation_id}/sync",
        "conv-b",
    )


def test_query_header_and_body_sources(tracing: OTLPReceiver) -> None:
    with run_uvicorn(make_app()) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/search", params={"conv": "q-1"}).json()["session_id"] == "q-1"
        response = http.get("/by-header", headers={"x-conversation": "h-1"})
        assert response.json()["session_id"] == "h-1"
        response = http.post("/by-body", json={"conversation_id": 42, "text": "hi"})
        assert response.json() == {"session_id": "42", "text": "hi"}
    neatlogs_web.flush()
    expected = {"search": "q-1", "by-header": "h-1", "by-body": "42"}
    spans = tracing.wait_for(lambda s: expected.keys() <= {x.name for x in s})
    ours = {s.name: s.attributes["session.id"] for s in spans if s.scope == "neatlogs_web"}
    assert ours == expected


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/search", {"params": {"conv": "bad id with spaces"}}),
        ("/by-header", {"headers": {"x-conversation": "x" * 200}}),
    ],
)
def test_invalid_values_keep_the_middlewares_session(
    path: str, kwargs: dict[str, dict[str, str]]
) -> None:
    before = neatlogs_web.stats()["rejected"].get("bind_session.invalid", 0)
    with run_uvicorn(make_app()) as base, httpx.Client(base_url=base, timeout=30) as http:
        cookie_session = http.get("/search").json()["session_id"]
        response = http.get(path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.json()["session_id"] == cookie_session
    assert neatlogs_web.stats()["rejected"]["bind_session.invalid"] == before + 1


def test_unknown_source_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        bind_session_from("x", source="cookie")  # type: ignore[arg-type]


def test_a_body_nested_deeper_than_the_parser_goes_is_no_error_page() -> None:
    app = FastAPI()
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="k")

    @app.post("/chat")
    async def chat(
        session_id: str | None = Depends(bind_session_from(source="body")),
    ) -> dict[str, str | None]:
        return {"session_id": session_id}

    with run_uvicorn(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        deep = b"[" * 100_000
        response = http.post("/chat", content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["session_id"] is not None  # the middleware's session
