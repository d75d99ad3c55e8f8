"""The binding's lifetime on real servers on 127.0.0.1: uvicorn and waitress.

Streamed bodies, background tasks, the thread pool, WebSockets, lifespan
shutdown, and worker threads reused across requests.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

import neatlogs_web
from neatlogs_web._session.ids import is_valid_session_id
from tests.apps import ClosingBody, json_body, make_asgi_app, make_wsgi_app
from tests.otlp_receiver import OTLPReceiver
from tests.pipeline import reset_global_tracer_provider
from tests.servers import run_uvicorn, run_waitress
from tests.tokens import session_of

HEADER = "x-neatlogs-session-id"


def flushed(receiver: OTLPReceiver, predicate: Any) -> list[Any]:
    neatlogs_web.flush()
    return receiver.wait_for(predicate)


def test_asgi_stream_background_and_threadpool_keep_the_session(tracing: OTLPReceiver) -> None:
    with run_uvicorn(make_asgi_app()) as base, httpx.Client(base_url=base) as http:
        with http.stream("GET", "/stream") as response:
            lines = [line for line in response.iter_lines() if line]
        session_id = session_of(response.headers[HEADER])
        pooled = json_body(http.get("/threadpool"))
    assert lines == [session_id] * 3
    assert pooled["session_id"] == session_id
    spans = flushed(tracing, lambda s: len(s) >= 5)
    names = {span.name: span for span in spans}
    assert set(names) >= {"chunk_0", "chunk_1", "chunk_2", "background", "turn"}
    assert {span.attributes["session.id"] for span in spans} == {session_id}


def test_asgi_websocket_messages_carry_the_handshake_session(tracing: OTLPReceiver) -> None:
    with run_uvicorn(make_asgi_app()) as base:
        url = base.replace("http://", "ws://") + "/ws"
        with connect(url) as first:
            first.send("hello")
            session_a = first.recv()
            # A new session: the accept response carried the cookie and token.
            cookie = first.response.headers["set-cookie"]
            assert session_of(first.response.headers[HEADER]) == session_a
            first.send("again")
            assert first.recv() == session_a
        token = cookie.split(";", 1)[0]
        with connect(url, additional_headers={"Cookie": token}) as returning:
            returning.send("back")
            assert returning.recv() == session_a
            assert "set-cookie" not in returning.response.headers
        with connect(url) as other:
            other.send("someone else")
            session_b = other.recv()
    assert session_b != session_a
    spans = flushed(tracing, lambda s: len(s) >= 4)
    by_message = {span.attributes["message"]: span.attributes["session.id"] for span in spans}
    assert by_message == {
        "hello": session_a,
        "again": session_a,
        "back": session_a,
        "someone else": session_b,
    }


def test_asgi_lifespan_shutdown_flushes_queued_spans(receiver: OTLPReceiver) -> None:
    reset_global_tracer_provider()
    # A long delay: nothing would be exported before shutdown without a flush.
    neatlogs_web.init(endpoint=receiver.url, schedule_delay_ms=600_000, flush_on_sigterm=False)
    with run_uvicorn(make_asgi_app(), lifespan="on") as base:
        httpx.get(base + "/whoami")
        time.sleep(0.2)
        assert receiver.spans == []
    # The server has stopped: its lifespan shutdown flushed before completing.
    assert [span.name for span in receiver.spans] == ["turn"]


def test_asgi_worker_task_does_not_inherit_a_previous_session(tracing: OTLPReceiver) -> None:
    sessions = []
    with run_uvicorn(make_asgi_app()) as base:
        for _ in range(3):
            with httpx.Client(base_url=base) as http:
                sessions.append(json_body(http.get("/whoami"))["session_id"])
                assert json_body(http.get("/healthz"))["session_id"] is None
    assert len(set(sessions)) == 3
    turns = flushed(tracing, lambda s: len(s) >= 3)
    assert sorted(span.attributes["session.id"] for span in turns) == sorted(sessions)


def test_asgi_error_handler_outside_the_middleware_reads_the_session(
    tracing: OTLPReceiver,
) -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    app = make_asgi_app()

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"session_id": request.state.neatlogs_session_id}, status_code=500)

    app.add_exception_handler(500, on_error)
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as http:
        session_id = json_body(http.get("/whoami"))["session_id"]
        response = http.get("/fail")
    assert response.status_code == 500
    assert json_body(response)["session_id"] == session_id
    spans = flushed(tracing, lambda s: len(s) >= 2)
    assert sorted(span.name for span in spans) == ["failing", "turn"]
    assert {span.attributes["session.id"] for span in spans} == {session_id}


def test_wsgi_stream_and_close_keep_the_session_on_waitress(tracing: OTLPReceiver) -> None:
    ClosingBody.closed_with.clear()
    with run_waitress(make_wsgi_app(), threads=2) as base, httpx.Client(base_url=base) as http:
        with http.stream("GET", "/stream") as response:
            lines = [line for line in response.iter_lines() if line]
        session_id = session_of(response.headers[HEADER])
        closing = http.get("/closing")
    assert lines == [session_id] * 3
    assert closing.text.splitlines() == [f"a:{session_id}", f"b:{session_id}"]
    assert ClosingBody.closed_with == [session_id]
    spans = flushed(tracing, lambda s: len(s) >= 5)
    assert {span.attributes["session.id"] for span in spans} == {session_id}


def test_wsgi_reused_worker_thread_never_inherits_a_session(tracing: OTLPReceiver) -> None:
    sessions = []
    with run_waitress(make_wsgi_app(), threads=1) as base:
        for _ in range(3):
            with httpx.Client(base_url=base) as http:
                sessions.append(json_body(http.get("/whoami"))["session_id"])
                with http.stream("GET", "/stream") as response:
                    list(response.iter_lines())
                # Same single worker thread, excluded path: nothing bound.
                assert json_body(http.get("/healthz"))["session_id"] is None
    assert len(set(sessions)) == 3
    # Each client's turn and streamed chunks are in its own session.
    spans = flushed(tracing, lambda s: len(s) >= 12)
    by_session: dict[str, list[str]] = {session_id: [] for session_id in sessions}
    for span in spans:
        by_session[span.attributes["session.id"]].append(span.name)
    for names in by_session.values():
        assert sorted(names) == ["chunk_0", "chunk_1", "chunk_2", "turn"]


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_idle_timeout_starts_a_new_session_linked_to_the_old(
    kind: str, tracing: OTLPReceiver
) -> None:
    from tests.apps import SECRET
    from tests.tokens import make_token

    idle_token = make_token("idle-session", SECRET, age_s=120)
    app = make_asgi_app(idle_timeout=60) if kind == "asgi" else make_wsgi_app(idle_timeout=60)
    server = run_uvicorn(app) if kind == "asgi" else run_waitress(app)
    with server as base, httpx.Client(base_url=base) as http:
        response = http.get("/whoami", headers={"cookie": f"neatlogs_session={idle_token}"})
        new_session = json_body(response)["session_id"]
        assert new_session != "idle-session"
        assert session_of(response.headers["set-cookie"].split(";")[0].split("=", 1)[1]) == (
            new_session
        )
    (turn,) = flushed(tracing, lambda s: len(s) >= 1)
    assert turn.attributes["session.id"] == new_session
    assert turn.attributes["session.previous_id"] == "idle-session"
    assert is_valid_session_id(new_session)
