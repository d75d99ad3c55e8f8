"""A session is one app's conversation: a request in which only the web framework's
own spans happened leaves no session, and a turn is named once.

FastAPI traces every request itself (its server span and its
``fastapi.dependencies`` / ``fastapi.endpoint`` spans). A health probe, a static
file, ``GET /whoami`` or any request that ran no turn must bring no session key to
any span of its trace; a request with any span of the app's work (a ``trace()``
block, a database call an instrumentation traced), or whose turn runs later in a
background task or a WebSocket message, still does. A turn in a request is one
span named for it, under the framework's request span, which keeps its own name
and carries the turn's session, input and output. Real uvicorn on 127.0.0.1,
real HTTP and WebSocket clients, spans decoded from a real OTLP receiver.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from websockets.sync.client import connect

import neatlogs_web
from neatlogs_web._tracing.stamping import END_USER_KEY_PRESETS, SESSION_KEY_PRESETS
from tests.framework_app import NO_TURN_PATHS, make_app
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_uvicorn

PROTO_KIND_SERVER = 2  # OTLP numbers kinds from UNSPECIFIED = 0
#: Every key any preset puts a session or an end user under.
SESSION_KEYS = frozenset(
    key for keys in (*SESSION_KEY_PRESETS.values(), *END_USER_KEY_PRESETS.values()) for key in keys
)


def path_of(span: ReceivedSpan) -> str | None:
    for key in ("url.path", "http.route"):
        if key in span.attributes:
            return str(span.attributes[key])
    return None


def request_spans(spans: list[ReceivedSpan], path: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.kind == PROTO_KIND_SERVER and path_of(s) == path]


def trace_of(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def session_keys_on(spans: list[ReceivedSpan]) -> dict[str, list[str]]:
    """Each span that carries a session or end-user key, by name: the keys it carries."""
    return {
        f"{s.scope}:{s.name}": sorted(SESSION_KEYS & s.attributes.keys())
        for s in spans
        if SESSION_KEYS & s.attributes.keys()
    }


def is_fastapis(span: ReceivedSpan) -> bool:
    return span.scope == "fastapi"


def test_fastapi_requests_that_ran_no_turn_leave_no_session_on_any_span(
    tracing: OTLPReceiver, tmp_path: Path
) -> None:
    with run_uvicorn(make_app(tmp_path)) as base:
        for _ in range(2):  # two browsers without a cookie, as a flush button makes them
            with httpx.Client(base_url=base) as fresh:
                assert fresh.get("/flush").json() == {"flushed": True}
        with httpx.Client(base_url=base) as user:
            session_id = user.get("/whoami").json()["session_id"]
            assert user.get("/healthz").status_code == 200
            assert user.get("/static/logo.txt").text == "a logo"
            user.post("/chat", json={"text": "hello"})
    assert neatlogs_web.flush()
    spans = tracing.wait_for(
        lambda s: all(request_spans(s, path) for path in (*NO_TURN_PATHS, "/chat"))
    )

    assert len(request_spans(spans, "/flush")) == 2
    for path in NO_TURN_PATHS:
        for request in request_spans(spans, path):
            in_request = trace_of(spans, request.trace_id)
            assert all(is_fastapis(s) for s in in_request), [s.name for s in in_request]
            if not path.startswith("/static"):  # FastAPI's operation spans too
                assert {"fastapi.dependencies", "fastapi.endpoint"} <= {s.name for s in in_request}
            assert session_keys_on(in_request) == {}, path
    # The session was there all along: the turn's trace carries it.
    (chat,) = request_spans(spans, "/chat")
    assert chat.attributes["session.id"] == session_id


def test_fastapi_requests_with_the_apps_work_keep_their_session(
    tracing: OTLPReceiver, tmp_path: Path
) -> None:
    """An instrumented call, a turn in a background task and a WebSocket message's
    turn: each still makes its trace the session's, through the app's spans."""
    with run_uvicorn(make_app(tmp_path)) as base:
        with httpx.Client(base_url=base) as user:
            session_id = user.get("/lookup").json()["session_id"]
            assert user.post("/later", json={"text": "note this"}).json() == {
                "session_id": session_id
            }
            token = user.cookies["neatlogs_session"]
        with connect(
            base.replace("http", "ws") + "/ws",
            additional_headers={"cookie": f"neatlogs_session={token}"},
        ) as socket:
            socket.send("hi")
            assert socket.recv() == session_id
    assert neatlogs_web.flush()
    spans = tracing.wait_for(
        lambda s: (
            sum(x.name == "turn" for x in s) >= 2
            and any(x.name == "SELECT users" for x in s)
            and request_spans(s, "/ws")
        )
    )

    # Every span of the app's work carries the session, exactly as it did.
    app_spans = [s for s in spans if not is_fastapis(s)]
    assert sorted(s.name for s in app_spans) == ["SELECT users", "llm", "llm", "turn", "turn"]
    for span in app_spans:
        assert span.attributes.get("session.id") == session_id, span.name
        assert span.attributes.get("neatlogs.session.id") == session_id, span.name
    # The database call alone puts its request in the session.
    (db_call,) = [s for s in spans if s.name == "SELECT users"]
    (lookup,) = request_spans(spans, "/lookup")
    assert db_call.trace_id == lookup.trace_id
    # A turn a background task runs after the response is in the request's trace
    # (FastAPI ended its request span with the response: the turn cannot claim it).
    (later,) = request_spans(spans, "/later")
    (background_turn,) = [s for s in trace_of(spans, later.trace_id) if s.name == "turn"]
    assert background_turn.attributes["input.value"] == "note this"
    # A WebSocket message's turn is a trace of its own, linked to the connection,
    # whose span carries the session of its turns.
    (connection,) = request_spans(spans, "/ws")
    (message_turn,) = [s for s in spans if s.name == "turn" and s.links]
    assert message_turn.links[0][0] == connection.trace_id
    assert connection.attributes["session.id"] == session_id
    # No other span of FastAPI's carries it.
    others = [s for s in spans if is_fastapis(s) and s.span_id != connection.span_id]
    assert session_keys_on(others) == {}


def test_a_websocket_connection_that_ran_no_turn_leaves_no_session(
    tracing: OTLPReceiver, tmp_path: Path
) -> None:
    with (
        run_uvicorn(make_app(tmp_path)) as base,
        connect(base.replace("http", "ws") + "/ws"),
    ):
        pass  # opened and closed: the page was left before a word was said
    assert neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: request_spans(s, "/ws"))
    (connection,) = request_spans(spans, "/ws")
    assert session_keys_on(trace_of(spans, connection.trace_id)) == {}


def test_fastapi_turn_is_named_once_under_the_request_span_that_carries_it(
    tracing: OTLPReceiver, tmp_path: Path
) -> None:
    """The README's waterfall: ``POST /chat`` > ``fastapi.endpoint`` > ``turn`` >
    ``llm``; the request span keeps its name and carries the turn for backends
    that read a trace's root (Phoenix, the local collector)."""
    with run_uvicorn(make_app(tmp_path)) as base, httpx.Client(base_url=base) as user:
        session_id = user.post("/chat", json={"text": "hello"}).json()["session_id"]
    assert neatlogs_web.flush()
    spans = tracing.wait_for(
        lambda s: request_spans(s, "/chat") and any(x.name == "llm" for x in s)
    )

    (request,) = request_spans(spans, "/chat")
    in_trace = trace_of(spans, request.trace_id)
    by_id = {s.span_id: s for s in in_trace}
    (turn,) = [s for s in in_trace if s.name == "turn"]
    (llm,) = [s for s in in_trace if s.name == "llm"]
    assert (request.name, request.parent_span_id) == ("POST /chat", "")
    assert turn.scope == "neatlogs_web" and llm.parent_span_id == turn.span_id
    ancestors = []
    parent = by_id.get(turn.parent_span_id)
    while parent is not None:
        ancestors.append(parent.name)
        parent = by_id.get(parent.parent_span_id)
    assert ancestors == ["fastapi.endpoint", "POST /chat"]
    # The carrier: session, kind, input and output where a root is read.
    assert request.attributes["session.id"] == session_id
    assert request.attributes["openinference.span.kind"] == "CHAIN"
    assert request.attributes["input.value"] == turn.attributes["input.value"] == "hello"
    assert request.attributes["output.value"] == turn.attributes["output.value"] == "re: hello"
    assert request.attributes["http.route"] == "/chat"
