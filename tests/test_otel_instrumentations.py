"""The OpenTelemetry ASGI and WSGI instrumentations trace each request: one turn is
still one trace, whichever side of our middleware they sit on.

Outside our middleware, the instrumentation's request span is active when the
request is bound; inside it, the request span starts after the binding. Either
way a turn joins the request's trace and the request span, keeping its name,
method, route and status, carries the turn (its input, output and session); a
request that runs no turn stays a trace whose spans carry no session.
Inside, another middleware may trace a call of its own (an auth or session
lookup) before the request span starts. Real servers (uvicorn, waitress), spans
decoded from a real OTLP receiver.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from flask import Flask, request
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelAsgiMiddleware
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWsgiMiddleware
from opentelemetry.trace import SpanKind, get_tracer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware as AsgiSessionMiddleware
from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessionMiddleware
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_uvicorn, run_waitress
from tests.tokens import session_of

PROTO_KIND_SERVER = 2  # OTLP numbers kinds from UNSPECIFIED = 0
TURNS = ["hello", "how are you", "bye"]
#: Where the instrumentation sits: outside ours, inside it, or inside it behind a
#: middleware that traces a lookup before the request span starts.
PLACES = ["outside", "inside", "inside-after-a-traced-lookup"]


def traced_lookup() -> None:
    """What an auth or session-store middleware does first: a traced client call."""
    with get_tracer("lookup").start_as_current_span("GET session", kind=SpanKind.CLIENT):
        pass


class AsgiLookup:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            traced_lookup()
        await self.app(scope, receive, send)


class WsgiLookup:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        traced_lookup()
        return self.app(environ, start_response)


def answer(text: str) -> str:
    """One turn: a chain with an LLM call inside, input and output set."""
    with neatlogs_web.trace("turn", input=text):
        with neatlogs_web.trace("llm", kind="llm"):
            neatlogs_web.set_usage(prompt_tokens=3, completion_tokens=4, model="m")
        reply = f"echo: {text}"
        neatlogs_web.set_output(reply)
        return reply


def starlette_app(instrumentation: str) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        return JSONResponse({"answer": answer((await request.json())["text"])})

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"session_id": neatlogs_web.current_session_id()})

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"]), Route("/whoami", whoami)])
    # add_middleware: the one added last is the outermost.
    if instrumentation == "outside":
        app.add_middleware(AsgiSessionMiddleware, secret_key="k")
        app.add_middleware(OtelAsgiMiddleware)
    else:
        app.add_middleware(OtelAsgiMiddleware)
        if instrumentation == "inside-after-a-traced-lookup":
            app.add_middleware(AsgiLookup)
        app.add_middleware(AsgiSessionMiddleware, secret_key="k")
    return app


def flask_app(instrumentation: str) -> Flask:
    app = Flask(__name__)

    @app.post("/chat")
    def chat() -> dict[str, str]:
        return {"answer": answer(request.get_json()["text"])}

    @app.get("/whoami")
    def whoami() -> dict[str, str | None]:
        return {"session_id": neatlogs_web.current_session_id()}

    if instrumentation == "outside":
        app.wsgi_app = OtelWsgiMiddleware(WsgiSessionMiddleware(app.wsgi_app, secret_key="k"))  # type: ignore[method-assign]
    else:
        inner: Any = OtelWsgiMiddleware(app.wsgi_app)
        if instrumentation == "inside-after-a-traced-lookup":
            inner = WsgiLookup(inner)
        app.wsgi_app = WsgiSessionMiddleware(inner, secret_key="k")  # type: ignore[method-assign]
    return app


SERVERS: dict[str, tuple[Callable[[str], Any], Callable[[Any], AbstractContextManager[str]]]] = {
    "starlette-uvicorn": (starlette_app, run_uvicorn),
    "flask-waitress": (flask_app, run_waitress),
}


def request_span_of(spans: list[ReceivedSpan], trace_id: str) -> ReceivedSpan:
    (server,) = [
        s
        for s in spans
        if s.trace_id == trace_id
        and s.scope.startswith("opentelemetry.instrumentation.")
        and s.kind == PROTO_KIND_SERVER
    ]
    return server


def path_of(span: ReceivedSpan) -> str | None:
    for key in ("url.path", "http.target"):
        if key in span.attributes:
            return str(span.attributes[key]).split("?")[0]
    return None


@pytest.mark.parametrize("instrumentation", PLACES)
@pytest.mark.parametrize("server", list(SERVERS))
def test_each_turn_is_one_trace_whichever_side_the_instrumentation_is_on(
    server: str, instrumentation: str, tracing: OTLPReceiver
) -> None:
    make_app, run = SERVERS[server]
    with run(make_app(instrumentation)) as base, httpx.Client(base_url=base) as http:
        first = http.post("/chat", json={"text": TURNS[0]})
        session_id = session_of(first.headers["x-neatlogs-session-id"])
        for text in TURNS[1:]:
            assert http.post("/chat", json={"text": text}).json() == {"answer": f"echo: {text}"}
        assert http.get("/whoami").json()["session_id"] == session_id
    assert neatlogs_web.flush()
    spans = tracing.wait_for(
        lambda s: sum(x.kind == PROTO_KIND_SERVER for x in s) >= len(TURNS) + 1
    )

    turns = [s for s in spans if s.name == "turn" and s.scope == "neatlogs_web"]
    assert len(turns) == len(TURNS)
    # N turns, N traces: the turn joined the request's trace, no second root.
    assert len({turn.trace_id for turn in turns}) == len(TURNS)
    for turn in turns:
        root = request_span_of(spans, turn.trace_id)
        assert root.parent_span_id == ""
        assert turn.parent_span_id == root.span_id
        assert turn.links == []
        # The request span carries the turn, and kept its name and what it knew.
        assert root.name == "POST /chat" or root.name == "POST"
        assert root.attributes["session.id"] == session_id
        assert root.attributes["openinference.span.kind"] == "CHAIN"
        assert root.attributes["input.value"] == turn.attributes["input.value"]
        assert root.attributes["output.value"] == f"echo: {turn.attributes['input.value']}"
        assert "http.route" in root.attributes or "http.target" in root.attributes
        assert root.attributes.get("http.status_code", 200) == 200
        # Every span of the app's work in the turn's trace carries the session; the
        # instrumentation's own spans (``http send``, ...) but the request span do not.
        for span in spans:
            if span.trace_id == turn.trace_id and span.span_id != root.span_id:
                framework = span.scope.startswith("opentelemetry.instrumentation.")
                expected = None if framework else session_id
                assert span.attributes.get("session.id") == expected, span.name
    assert sorted(t.attributes["input.value"] for t in turns) == sorted(TURNS)
    # The request that ran no turn is kept, no span of it in the session.
    (whoami,) = [s for s in spans if s.kind == PROTO_KIND_SERVER and path_of(s) == "/whoami"]
    assert whoami.parent_span_id == ""
    assert whoami.name.startswith("GET")
    in_whoami = [s for s in spans if s.trace_id == whoami.trace_id]
    assert [s.name for s in in_whoami if "session.id" in s.attributes] == []
    assert "openinference.span.kind" not in whoami.attributes


def test_an_instrumentation_inside_ours_keeps_its_receive_and_send_spans_in_its_trace(
    tracing: OTLPReceiver,
) -> None:
    """The server's ``receive()`` and ``send()`` run outside every request, in an empty
    context (the connection's next request starts there), so an instrumentation's
    ``http receive`` and ``http send`` spans stay under its request span when ours
    is outside it: it calls them from inside the request (SECURITY.md)."""
    with run_uvicorn(starlette_app("inside")) as base, httpx.Client(base_url=base) as http:
        http.post("/chat", json={"text": TURNS[0]})
        http.get("/whoami")
    assert neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: sum(x.kind == PROTO_KIND_SERVER for x in s) >= 2)

    asgi = [s for s in spans if s.scope == "opentelemetry.instrumentation.asgi"]
    requests = {s.span_id: s for s in asgi if s.kind == PROTO_KIND_SERVER}
    parts = [s for s in asgi if s.kind != PROTO_KIND_SERVER]
    assert {s.name.rsplit(" ", 2)[-1] for s in parts} == {"receive", "send"}
    for part in parts:
        request_span = requests[part.parent_span_id]
        assert part.trace_id == request_span.trace_id, part.name
        assert "session.id" not in part.attributes


@pytest.mark.parametrize("instrumentation", PLACES)
def test_a_websocket_connection_span_carries_the_session_of_its_turns(
    instrumentation: str, tracing: OTLPReceiver
) -> None:
    """Each message is a turn of its own, linked to the connection's span, which
    carries the session wherever the instrumentation sits."""
    from websockets.sync.client import connect

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(answer(text))
        except WebSocketDisconnect:
            return

    app = starlette_app(instrumentation)
    app.router.routes.append(WebSocketRoute("/ws", chat))
    with run_uvicorn(app) as base, connect(base.replace("http", "ws") + "/ws") as socket:
        for text in TURNS:
            socket.send(text)
            assert socket.recv() == f"echo: {text}"
    assert neatlogs_web.flush()
    spans = tracing.wait_for(
        lambda s: (
            any(x.kind == PROTO_KIND_SERVER for x in s)
            and sum(x.name == "turn" and x.scope == "neatlogs_web" for x in s) >= len(TURNS)
        )
    )
    (connection,) = [s for s in spans if s.kind == PROTO_KIND_SERVER]
    session_id = connection.attributes.get("session.id")
    assert session_id, connection.attributes
    turns = [s for s in spans if s.name == "turn" and s.scope == "neatlogs_web"]
    assert len({turn.trace_id for turn in turns}) == len(TURNS)
    for turn in turns:
        assert turn.attributes["session.id"] == session_id
        assert turn.links == [(connection.trace_id, connection.span_id)]
