"""Requests that ran no turn leave no session in Phoenix; the conversations are
exactly the sessions Phoenix lists, each turn one trace named once.

FastAPI traces every request itself (its telemetry is on by default): a server
span and ``fastapi.dependencies`` / ``fastapi.endpoint`` spans. Health probes,
a static file, ``GET /whoami`` and a ``GET /flush`` from browsers without a
cookie run no turn, so none of them is a session, nor a trace of a
conversation's session. Turns run in the handler, in a background task after
the response, and per WebSocket message: each of those is a session. A real
uvicorn on 127.0.0.1, real HTTP and WebSocket clients, export over OTLP/HTTP
to a real Phoenix, read back through its own API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from websockets.sync.client import connect

import neatlogs_web
from tests.backends.phoenix_client import PhoenixClient, Session, Span, settled, wait_for
from tests.backends.phoenix_server import PhoenixServer
from tests.framework_app import NO_TURN_PATHS, make_app
from tests.pipeline import own_pipeline
from tests.servers import run_uvicorn

pytestmark = pytest.mark.backends

PROJECT = "framework-requests"
CHATTERS = ("ana", "ben")
TURNS = 2
#: Probes a user's page makes with its cookie.
PROBES = tuple(path for path in NO_TURN_PATHS if path != "/flush")


@dataclass(frozen=True)
class Visits:
    """Whose session is whose, and every span the visits sent to Phoenix."""

    chat_sessions: dict[str, str]
    background_session: str
    websocket_session: str
    spans: list[Span]

    @property
    def conversations(self) -> set[str]:
        return {*self.chat_sessions.values(), self.background_session, self.websocket_session}


def visit(base: str) -> tuple[dict[str, str], str, str]:
    for _ in range(2):  # two browsers without a cookie, as a flush button makes them
        with httpx.Client(base_url=base) as fresh:
            fresh.get("/flush").raise_for_status()
    chat_sessions = {}
    for user in CHATTERS:
        with httpx.Client(base_url=base) as client:
            for probe in PROBES:  # with the user's cookie, once it has one
                client.get(probe).raise_for_status()
            for turn in range(TURNS):
                body = client.post("/chat", json={"text": f"{user} {turn}"}).json()
                chat_sessions[user] = body["session_id"]
            for probe in PROBES:
                client.get(probe).raise_for_status()
    with httpx.Client(base_url=base) as client:
        background_session = client.post("/later", json={"text": "later"}).json()["session_id"]
    with connect(base.replace("http", "ws") + "/ws") as socket:
        socket.send("over the socket")
        websocket_session = str(socket.recv())
    return chat_sessions, background_session, websocket_session


@pytest.fixture(scope="module")
def visits(
    phoenix_server: PhoenixServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Visits]:
    static = tmp_path_factory.mktemp("static")
    with own_pipeline(endpoint=phoenix_server.url, workflow_name=PROJECT, schedule_delay_ms=50):
        with run_uvicorn(make_app(static)) as base:
            chat_sessions, background_session, websocket_session = visit(base)
        assert neatlogs_web.flush(10), "neatlogs_web did not export every span"
    with PhoenixClient(phoenix_server.url) as phoenix:
        spans = wait_for(lambda: phoenix.spans(PROJECT), settled(), timeout_s=30)
    yield Visits(chat_sessions, background_session, websocket_session, spans)


def sessions(phoenix: PhoenixClient) -> dict[str, Session]:
    return {s.session_id: s for s in phoenix.sessions(PROJECT)}


def request_traces(visits: Visits, path: str) -> set[str]:
    return {
        span.trace_id
        for span in visits.spans
        if span.parent_id is None
        and (span.attribute("url.path") or span.attribute("http.route")) == path
    }


def test_the_conversations_are_exactly_the_sessions_phoenix_lists(
    phoenix: PhoenixClient, visits: Visits
) -> None:
    assert len(visits.conversations) == len(CHATTERS) + 2
    assert set(sessions(phoenix)) == visits.conversations


def test_requests_that_ran_no_turn_carry_no_session_on_any_span(visits: Visits) -> None:
    for path in ("/flush", *PROBES):
        traces = request_traces(visits, path)
        assert traces, f"no {path} request reached Phoenix"
        stamped = [
            (span.name, span.attribute("session.id"))
            for span in visits.spans
            if span.trace_id in traces and span.attribute("session.id") is not None
        ]
        assert stamped == [], path


def test_a_chat_session_is_its_turns_each_one_trace_named_once(
    phoenix: PhoenixClient, visits: Visits
) -> None:
    found = sessions(phoenix)
    for user, session_id in visits.chat_sessions.items():
        session = found[session_id]
        # Its probes are not in it: only the turns, under the request span that
        # carries each of them.
        assert session.root_span_names == ["POST /chat"] * TURNS, user
        assert session.inputs == [f"{user} {turn}" for turn in range(TURNS)]
        assert session.outputs == [f"re: {user} {turn}" for turn in range(TURNS)]
        assert (session.first_input, session.last_output) == (
            f"{user} 0",
            f"re: {user} {TURNS - 1}",
        )
    for trace_id in request_traces(visits, "/chat"):
        names = [span.name for span in visits.spans if span.trace_id == trace_id]
        assert names.count("turn") == 1 and names.count("llm") == 1, names


def test_a_turn_in_a_background_task_or_a_websocket_message_is_a_session(
    phoenix: PhoenixClient, visits: Visits
) -> None:
    found = sessions(phoenix)
    later = found[visits.background_session]
    assert (later.num_traces, later.tokens.total) == (1, 7)
    socket = found[visits.websocket_session]
    # The message's turn, and the connection's span its turn links to.
    assert socket.num_traces == 2 and socket.tokens.total == 7
    assert "over the socket" in socket.inputs
