"""Rebinding after routing, the trace-id response header, whole-session sampling."""

from __future__ import annotations

from collections import defaultdict

import httpx
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.apps import client_for, json_body
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import reset_global_tracer_provider
from tests.servers import run_uvicorn


def test_bind_session_after_routing_follows_body_background_and_request_span(
    tracing: OTLPReceiver,
) -> None:
    app = FastAPI()
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="k")

    def later() -> None:
        with neatlogs_web.trace("later"):
            pass

    @app.post("/rooms/{room}")
    async def room(room: str, background: BackgroundTasks) -> StreamingResponse:
        assert neatlogs_web.bind_session(f"room-{room}")
        background.add_task(later)

        async def body() -> object:
            with neatlogs_web.trace("streamed"):
                yield neatlogs_web.current_session_id() or "-"

        return StreamingResponse(body(), background=background)

    with run_uvicorn(app) as base:
        assert httpx.post(base + "/rooms/7").text == "room-7"
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: {"later", "streamed"} <= {x.name for x in s} and len(s) >= 4)
    ours = {span.name: span for span in spans if span.scope == "neatlogs_web"}
    assert ours["streamed"].attributes["session.id"] == "room-7"
    assert ours["later"].attributes["session.id"] == "room-7"
    # FastAPI's request span carries the turn, in the rebound session.
    (request,) = [s for s in spans if s.attributes.get("http.route") == "/rooms/{room}"]
    assert (request.name, request.attributes["session.id"]) == ("POST /rooms/{room}", "room-7")


def test_bind_session_rejects_invalid_ids_and_counts_them() -> None:
    before = neatlogs_web.stats()["rejected"].get("bind_session.invalid", 0)
    with neatlogs_web.session("kept"):
        assert not neatlogs_web.bind_session("not valid!")
        assert neatlogs_web.current_session_id() == "kept"
    assert neatlogs_web.stats()["rejected"]["bind_session.invalid"] == before + 1


def test_expose_trace_id_names_the_turn_trace(tracing: OTLPReceiver) -> None:
    for kind in ("asgi", "wsgi"):
        tracing.clear()
        with client_for(kind, expose_trace_id=True) as http:
            first = http.get("/whoami")
            second = http.get("/whoami")
        neatlogs_web.flush()
        spans = tracing.wait_for(lambda s: len(s) >= 2)
        turn_traces = {span.trace_id for span in spans if span.name == "turn"}
        assert first.headers["x-neatlogs-trace-id"] in turn_traces
        assert second.headers["x-neatlogs-trace-id"] in turn_traces
        assert first.headers["x-neatlogs-trace-id"] != second.headers["x-neatlogs-trace-id"]
        assert json_body(second)["session_id"] == json_body(first)["session_id"]


def test_sampling_keeps_or_drops_whole_sessions(receiver: OTLPReceiver) -> None:
    reset_global_tracer_provider()
    neatlogs_web.init(endpoint=receiver.url, sample_rate=0.5, flush_on_sigterm=False)
    sessions = [f"session-{index}" for index in range(200)]
    for session_id in sessions:
        for turn in range(3):
            with (
                neatlogs_web.session(session_id),
                neatlogs_web.trace("turn", turn=turn),
                neatlogs_web.trace("llm"),
            ):
                pass
    for index in range(200):
        with neatlogs_web.trace("no_session", index=index):
            pass
    assert neatlogs_web.flush()
    spans = receiver.spans  # flush() returns once the receiver has answered
    per_session: dict[str, list[str]] = defaultdict(list)
    for span in spans:
        if span.name != "no_session":
            per_session[span.attributes["session.id"]].append(span.name)
    assert all(sorted(names) == ["llm"] * 3 + ["turn"] * 3 for names in per_session.values())
    assert 60 <= len(per_session) <= 140  # about half of 200 sessions kept
    kept_without_session = sum(span.name == "no_session" for span in spans)
    assert 60 <= kept_without_session <= 140  # trace-id ratio sampling
