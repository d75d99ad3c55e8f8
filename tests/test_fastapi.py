"""FastAPI traces itself through the global provider: one turn is still one trace.

Its HTTP server span starts before our middleware runs. A turn run in the
request joins that trace and the server span, keeping its name, route,
method and status, carries the turn (its input, output and session); a
request that runs no turn stays a trace without a session.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, WebSocket

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_uvicorn
from tests.tokens import session_of

PROTO_KIND_SERVER = 2  # OTLP numbers kinds from UNSPECIFIED = 0


def make_app() -> FastAPI:
    app = FastAPI()  # telemetry on by default
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="k")

    def later() -> None:
        with neatlogs_web.trace("later"):
            pass

    @app.post("/chat")
    async def chat(message: dict[str, str], background: BackgroundTasks) -> dict[str, str]:
        background.add_task(later)
        with neatlogs_web.trace("turn", input=message["text"]):
            with neatlogs_web.trace("llm", kind="llm"):
                neatlogs_web.set_usage(prompt_tokens=3, completion_tokens=4, model="m")
            answer = f"echo: {message['text']}"
            neatlogs_web.set_output(answer)
            return {"answer": answer}

    @app.get("/sync")
    def sync_turn() -> dict[str, str | None]:
        with neatlogs_web.trace("sync_turn"):
            return {"session_id": neatlogs_web.current_session_id()}

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"session_id": neatlogs_web.current_session_id()}

    @app.websocket("/ws")
    async def chat_socket(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            with neatlogs_web.trace("turn", input=text):
                neatlogs_web.set_output(f"echo: {text}")
                await websocket.send_text(neatlogs_web.current_session_id() or "-")

    return app


def server_span_of(spans: list[ReceivedSpan], trace_id: str) -> ReceivedSpan:
    (server,) = [
        s
        for s in spans
        if s.trace_id == trace_id and s.scope == "fastapi" and s.kind == PROTO_KIND_SERVER
    ]
    return server


def test_each_turn_is_one_trace_and_the_request_span_carries_the_turn(
    tracing: OTLPReceiver,
) -> None:
    with run_uvicorn(make_app()) as base, httpx.Client(base_url=base) as http:
        first = http.post("/chat", json={"text": "hello"})
        session_id = session_of(first.headers["x-neatlogs-session-id"])
        http.post("/chat", json={"text": "again"})
        assert http.get("/sync").json()["session_id"] == session_id
        assert http.get("/whoami").json()["session_id"] == session_id
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: sum(x.kind == PROTO_KIND_SERVER for x in s) >= 4)

    turns = [s for s in spans if s.name in ("turn", "sync_turn") and s.scope == "neatlogs_web"]
    assert len(turns) == 3
    # One trace per turn: the request span is its root and carries the turn.
    assert len({turn.trace_id for turn in turns}) == 3
    for turn in turns:
        root = server_span_of(spans, turn.trace_id)
        assert root.parent_span_id == ""
        assert root.name == {"turn": "POST /chat", "sync_turn": "GET /sync"}[turn.name]
        assert root.attributes["session.id"] == session_id
        assert root.attributes["openinference.span.kind"] == "CHAIN"
        assert "http.route" in root.attributes  # what the request span knew stays
        assert turn.links == []
    hello = next(t for t in turns if t.attributes.get("input.value") == "hello")
    root = server_span_of(spans, hello.trace_id)
    assert root.attributes["input.value"] == "hello"
    assert root.attributes["output.value"] == "echo: hello"
    # Work after the response (a background task) stays in the turn's trace.
    later = [s for s in spans if s.name == "later"]
    assert len(later) == 2
    assert {s.trace_id for s in later} <= {t.trace_id for t in turns}
    # Every span of a turn's trace carries the session, but FastAPI's own spans in
    # the request (fastapi.endpoint, ...): the session comes with the app's work.
    for span in spans:
        if span.trace_id in {t.trace_id for t in turns}:
            expected = None if span.scope == "fastapi" and span.parent_span_id else session_id
            assert span.attributes.get("session.id") == expected, span.name
    # A request that ran no turn is kept, as a trace outside the session.
    (whoami,) = [s for s in spans if s.name == "GET /whoami"]
    assert "session.id" not in whoami.attributes
    llm = next(s for s in spans if s.name == "llm" and s.trace_id == hello.trace_id)
    assert llm.attributes["openinference.span.kind"] == "LLM"
    assert llm.attributes["llm.token_count.total"] == 7
    assert llm.attributes["gen_ai.usage.input_tokens"] == 3


def test_request_traces_all_keeps_every_request_in_the_session(receiver: OTLPReceiver) -> None:
    from tests.pipeline import reset_global_tracer_provider

    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    neatlogs_web.init(endpoint=receiver.url, request_traces="all", flush_on_sigterm=False)
    try:
        with run_uvicorn(make_app()) as base, httpx.Client(base_url=base) as http:
            session_id = http.get("/whoami").json()["session_id"]
        neatlogs_web.flush()
        spans = receiver.wait_for(lambda s: any(x.name == "GET /whoami" for x in s))
        (whoami,) = [s for s in spans if s.name == "GET /whoami"]
        assert whoami.attributes["session.id"] == session_id
    finally:
        neatlogs_web.shutdown()
        reset_global_tracer_provider()


def test_each_message_on_a_websocket_is_a_turn_of_its_own(tracing: OTLPReceiver) -> None:
    """A connection is one request but many turns: each message's turn is its own
    trace in the session, linked to the connection's span."""
    from websockets.sync.client import connect

    with run_uvicorn(make_app()) as base, connect(base.replace("http", "ws") + "/ws") as socket:
        sessions = set()
        for text in ("one", "two", "three"):
            socket.send(text)
            sessions.add(socket.recv())
    assert len(sessions) == 1
    neatlogs_web.flush()
    spans = tracing.wait_for(
        lambda s: sum(x.name == "turn" and x.scope == "neatlogs_web" for x in s) >= 3
    )
    turns = [s for s in spans if s.name == "turn" and s.scope == "neatlogs_web"]
    assert sorted(t.attributes["input.value"] for t in turns) == ["one", "three", "two"]
    assert len({t.trace_id for t in turns}) == 3
    for turn in turns:
        assert turn.parent_span_id == ""
        assert turn.attributes["session.id"] in sessions
        assert len(turn.links) == 1


def test_init_after_shutdown_exports_fastapis_spans_with_the_turn(receiver: OTLPReceiver) -> None:
    """OpenTelemetry sets the global provider once: FastAPI keeps the first init()'s
    after shutdown(). A later init() exports through it, so the request span that
    carries the turn, and FastAPI's own spans, still arrive with it."""
    from tests.pipeline import reset_global_tracer_provider

    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    try:
        for text in ("first", "second", "third"):
            neatlogs_web.init(endpoint=receiver.url, schedule_delay_ms=20, flush_on_sigterm=False)
            with run_uvicorn(make_app()) as base, httpx.Client(base_url=base) as http:
                assert http.post("/chat", json={"text": text}).status_code == 200
            assert neatlogs_web.flush(10)
            neatlogs_web.shutdown()
    finally:
        reset_global_tracer_provider()
    spans = receiver.spans
    by_id = {s.span_id: s for s in spans}
    requests = [s for s in spans if s.kind == PROTO_KIND_SERVER]
    assert sorted(s.attributes.get("input.value") for s in requests) == ["first", "second", "third"]
    for span in spans:  # every parent arrived: no turn hangs under a span never sent
        assert not span.parent_span_id or span.parent_span_id in by_id, span.name
    assert len({s.span_id for s in spans}) == len(spans), "a span was exported twice"


def test_init_after_shutdown_with_another_workflow_says_what_it_cannot_change(
    receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """FastAPI's request span then stays on the first provider, never sent: the turn
    is a trace of its own, linked to it, rather than a child of a span never sent."""
    from tests.pipeline import reset_global_tracer_provider

    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    try:
        neatlogs_web.init(endpoint=receiver.url, flush_on_sigterm=False)
        neatlogs_web.shutdown()
        with caplog.at_level(logging.WARNING, logger="neatlogs_web"):
            neatlogs_web.init(endpoint=receiver.url, workflow_name="other", flush_on_sigterm=False)
        with run_uvicorn(make_app()) as base, httpx.Client(base_url=base) as http:
            assert http.post("/chat", json={"text": "hi"}).status_code == 200
        assert neatlogs_web.flush(10)
    finally:
        neatlogs_web.shutdown()
        reset_global_tracer_provider()
    assert "OpenTelemetry keeps the first one global" in caplog.text
    spans = receiver.spans
    (turn,) = [s for s in spans if s.name == "turn"]
    assert turn.resource["service.name"] == "other"
    assert not turn.parent_span_id and len(turn.links) == 1
    by_id = {s.span_id for s in spans}
    assert all(not s.parent_span_id or s.parent_span_id in by_id for s in spans)
