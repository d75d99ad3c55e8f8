"""FastAPI traces itself through the global provider: its spans join ours.

Its HTTP server span starts before our middleware runs, so binding stamps
it; the operation spans it starts inside the request carry the session like
any span; ``trace("turn")`` in a handler is still a root, linked to them.
"""

from __future__ import annotations

import httpx
from fastapi import BackgroundTasks, FastAPI

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn
from tests.tokens import session_of

PROTO_KIND_SERVER = 2  # OTLP numbers kinds from UNSPECIFIED = 0


def make_app() -> FastAPI:
    app = FastAPI()  # telemetry on by default
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="k")

    def later() -> None:
        with neatlogs_web.trace("later"):
            pass

    @app.get("/turn")
    async def turn(background: BackgroundTasks) -> dict[str, str | None]:
        background.add_task(later)
        with neatlogs_web.trace("turn"):
            return {"session_id": neatlogs_web.current_session_id()}

    @app.get("/sync")
    def sync_turn() -> dict[str, str | None]:
        with neatlogs_web.trace("sync_turn"):
            return {"session_id": neatlogs_web.current_session_id()}

    return app


def test_fastapi_own_spans_carry_the_session_and_turns_stay_roots(
    tracing: OTLPReceiver,
) -> None:
    with run_uvicorn(make_app()) as base, httpx.Client(base_url=base) as http:
        response = http.get("/turn")
        session_id = session_of(response.headers["x-neatlogs-session-id"])
        assert http.get("/sync").json()["session_id"] == session_id
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: sum(x.scope == "fastapi" for x in s) >= 2 and len(s) >= 6)

    server_spans = [s for s in spans if s.scope == "fastapi" and s.kind == PROTO_KIND_SERVER]
    assert {s.name for s in server_spans} == {"GET /turn", "GET /sync"}
    for span in spans:
        assert span.attributes.get("session.id") == session_id, span.name
        assert span.attributes.get("neatlogs.session.id") == session_id, span.name

    by_name = {s.name: s for s in spans}
    turn, server = by_name["turn"], by_name["GET /turn"]
    assert turn.parent_span_id == ""
    assert turn.trace_id != server.trace_id
    assert len(turn.links) == 1 and turn.links[0][0] == server.trace_id
    assert by_name["sync_turn"].parent_span_id == ""
    assert by_name["later"].parent_span_id == ""
    operation_spans = [s for s in spans if s.name.startswith("fastapi.")]
    request_traces = {server.trace_id, by_name["GET /sync"].trace_id}
    assert operation_spans
    assert all(s.trace_id in request_traces for s in operation_spans)
