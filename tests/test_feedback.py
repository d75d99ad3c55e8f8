"""Feedback per turn, on real servers: the token a turn's response carries records a
judgment on that turn of that session, and nothing else does."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

import neatlogs_web
from neatlogs_web._session.feedback_tokens import FeedbackRefused
from tests.apps import make_asgi_app, make_wsgi_app
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_uvicorn, run_waitress

TOKEN_HEADER = "x-neatlogs-feedback-token"
ENDPOINT = "/neatlogs/feedback"


@contextmanager
def serve(kind: str, **options: Any) -> Iterator[str]:
    options = {"feedback": True, **options}
    if kind == "asgi":
        with run_uvicorn(make_asgi_app(**options)) as base:
            yield base
    else:
        with run_waitress(make_wsgi_app(**options), threads=4) as base:
            yield base


def spans_named(receiver: OTLPReceiver, name: str, count: int) -> list[ReceivedSpan]:
    neatlogs_web.flush()
    return [
        s
        for s in receiver.wait_for(lambda s: sum(x.name == name for x in s) >= count)
        if s.name == name
    ]


def test_feedback_lands_on_the_turn_of_its_session(tracing: OTLPReceiver, kind: str) -> None:
    with serve(kind) as base, httpx.Client(base_url=base) as alice:
        first = alice.get("/whoami")
        second = alice.get("/whoami")
        session_id = first.json()["session_id"]
        sent = alice.post(
            ENDPOINT,
            json={
                "token": first.headers[TOKEN_HEADER],
                "score": 1,
                "label": "helpful",
                "comment": "just right",
            },
        )
        assert (sent.status_code, sent.content) == (204, b"")
    turns = spans_named(tracing, "turn", 2)
    (feedback,) = spans_named(tracing, "feedback", 1)
    (turn,) = [t for t in turns if t.trace_id == feedback.trace_id]
    assert feedback.parent_span_id == turn.span_id
    assert turn.attributes["session.id"] == session_id
    assert feedback.attributes["session.id"] == session_id
    assert feedback.attributes["neatlogs.feedback.score"] == 1.0
    assert feedback.attributes["neatlogs.feedback.label"] == "helpful"
    assert feedback.attributes["neatlogs.feedback.comment"] == "just right"
    # Each response names its own turn.
    assert second.headers[TOKEN_HEADER] != first.headers[TOKEN_HEADER]
    assert second.headers[TOKEN_HEADER].startswith(
        next(t for t in turns if t.trace_id != turn.trace_id).trace_id
    )


def _tampered(token: str) -> str:
    """``token`` with its first character changed (a hex digit of the trace id)."""
    return ("1" if token[0] == "0" else "0") + token[1:]


def test_forged_foreign_and_malformed_feedback_change_nothing(
    tracing: OTLPReceiver, kind: str
) -> None:
    with (
        serve(kind) as base,
        httpx.Client(base_url=base) as alice,
        httpx.Client(base_url=base) as mallory,
    ):
        token = alice.get("/whoami").headers[TOKEN_HEADER]
        mallory.get("/whoami")  # a session of its own
        answers = {
            "foreign": mallory.post(ENDPOINT, json={"token": token, "score": 0}),
            "tampered": alice.post(ENDPOINT, json={"token": _tampered(token), "score": 0}),
            "unsigned": alice.post(ENDPOINT, json={"token": token.rsplit(".", 2)[0], "score": 0}),
            "not_json": alice.post(ENDPOINT, content=b"{oops"),
            "no_token": alice.post(ENDPOINT, json={"score": 0}),
            "bad_score": alice.post(ENDPOINT, json={"token": token, "score": "great"}),
            "nothing": alice.post(ENDPOINT, json={"token": token}),
            "too_large": alice.post(ENDPOINT, json={"token": token, "comment": "x" * 20000}),
            "get": alice.get(ENDPOINT),
        }
        # A span ends the test: anything the refusals recorded is exported before it.
        assert alice.get("/whoami").status_code == 200
    statuses = {name: (r.status_code, r.json()["error"]) for name, r in answers.items()}
    assert statuses == {
        "foreign": (403, "wrong_session"),
        "tampered": (403, "forged"),
        "unsigned": (403, "forged"),
        "not_json": (400, "bad_request"),
        "no_token": (400, "bad_request"),
        "bad_score": (400, "bad_request"),
        "nothing": (400, "bad_request"),
        "too_large": (413, "too_large"),
        "get": (405, "method_not_allowed"),
    }
    assert all(r.headers["content-type"] == "application/json" for r in answers.values())
    spans_named(tracing, "turn", 3)
    assert [s for s in tracing.spans if s.name == "feedback"] == []
    rejected = neatlogs_web.stats()["rejected"]
    assert rejected["feedback.wrong_session"] >= 1 and rejected["feedback.forged"] >= 2


def test_an_expired_token_is_gone(tracing: OTLPReceiver, kind: str) -> None:
    with serve(kind, feedback_max_age=1) as base, httpx.Client(base_url=base) as alice:
        token = alice.get("/whoami").headers[TOKEN_HEADER]
        time.sleep(2.1)
        expired = alice.post(ENDPOINT, json={"token": token, "score": 1})
        assert alice.get("/whoami").status_code == 200
    assert (expired.status_code, expired.json()["error"]) == (410, "expired")
    spans_named(tracing, "turn", 2)
    assert [s for s in tracing.spans if s.name == "feedback"] == []


def test_without_the_option_no_token_and_no_endpoint(tracing: OTLPReceiver, kind: str) -> None:
    with serve(kind, feedback=False) as base, httpx.Client(base_url=base) as alice:
        response = alice.get("/whoami")
        assert TOKEN_HEADER not in response.headers
        assert alice.post(ENDPOINT, json={"token": "x"}).status_code in (404, 405)


def test_record_feedback_checks_the_bound_session(tracing: OTLPReceiver) -> None:
    with serve("asgi", feedback_path=None) as base, httpx.Client(base_url=base) as alice:
        token = alice.get("/whoami").headers[TOKEN_HEADER]
        assert alice.post(ENDPOINT, json={"token": token}).status_code in (404, 405)
    with neatlogs_web.session("someone-else"), pytest.raises(FeedbackRefused) as refused:
        neatlogs_web.record_feedback(token, score=1)
    assert refused.value.reason == "wrong_session"
    session_id = token.rsplit(".", 2)[0][50:]
    with neatlogs_web.session(session_id):
        turn = neatlogs_web.record_feedback(token, label="wrong")
        with pytest.raises(ValueError, match="needs a score, a label or a comment"):
            neatlogs_web.record_feedback(token)
    (feedback,) = spans_named(tracing, "feedback", 1)
    assert (feedback.trace_id, feedback.parent_span_id) == (
        f"{turn.trace_id:032x}",
        f"{turn.span_id:016x}",
    )
    assert feedback.attributes["session.id"] == session_id


def _send_cut_short(base: str, cookie: str, body: bytes) -> None:
    """POST ``body`` with a Content-Length promising 50 bytes more, then leave."""
    host, port = base.removeprefix("http://").split(":")
    head = (
        f"POST {ENDPOINT} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body) + 50}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode("latin-1") + body)
        time.sleep(0.2)


def test_odd_bodies_get_a_json_400_and_a_body_cut_short_records_nothing(
    tracing: OTLPReceiver, kind: str
) -> None:
    with serve(kind) as base, httpx.Client(base_url=base) as alice:
        token = alice.get("/whoami").headers[TOKEN_HEADER]
        nested = b'{"x": ' + b"[" * 3000 + b"]" * 3000 + b', "token": "t"}'
        deep = alice.post(ENDPOINT, content=nested, headers={"content-type": "application/json"})
        huge = alice.post(ENDPOINT, json={"token": token, "score": 10**400})
        empty = alice.post(ENDPOINT, json={"token": token, "label": ""})
        # A lone surrogate is valid JSON, but no UTF-8: the exporter would drop it.
        lone = alice.post(
            ENDPOINT,
            content=b'{"token": "%s", "comment": "\\ud800"}' % token.encode(),
            headers={"content-type": "application/json"},
        )
        cookie = "; ".join(f"{name}={value}" for name, value in alice.cookies.items())
        _send_cut_short(base, cookie, json.dumps({"token": token, "label": "partial"}).encode())
        time.sleep(0.3)  # the server has had the body, and the client left
        assert alice.get("/whoami").status_code == 200
    assert (deep.status_code, deep.json()["error"]) == (400, "bad_request")
    assert (huge.status_code, huge.json()["error"]) == (400, "bad_request")
    assert (lone.status_code, lone.json()["error"]) == (400, "bad_request")
    assert (empty.status_code, empty.json()["error"]) == (400, "bad_request")
    spans_named(tracing, "turn", 2)
    assert [s for s in tracing.spans if s.name == "feedback"] == []


def test_a_head_request_gets_a_bodiless_405_and_the_connection_stays_in_step(
    tracing: OTLPReceiver, kind: str
) -> None:
    with serve(kind) as base:
        host, port = base.removeprefix("http://").split(":")
        requests = (
            f"HEAD {ENDPOINT} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            f"GET /whoami HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(requests.encode("latin-1"))
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    head, after = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 405")
    assert after.startswith(b"HTTP/1.1 200")  # nothing of the 405's body in between


def test_a_content_length_that_is_no_number_gets_a_400_not_an_error_page() -> None:
    """``"²"`` is a digit to ``str.isdigit()``; werkzeug's server passes it on."""
    from werkzeug.test import EnvironBuilder

    app = make_wsgi_app(feedback=True)
    environ = EnvironBuilder(path=ENDPOINT, method="POST", data=b"{}").get_environ()
    environ["CONTENT_LENGTH"] = "\u00b2"
    answered: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answered.append(status)))
    assert answered == ["400 Bad Request"]
    assert json.loads(body)["error"] == "bad_request"


def test_a_session_a_json_body_names_judges_its_turns_with_the_same_field(
    tracing: OTLPReceiver, kind: str
) -> None:
    with (
        serve(kind, conversation_json_field="conversation_id") as base,
        httpx.Client(base_url=base) as client,
    ):
        asked = client.post("/json", json={"conversation_id": "conv-7", "text": "hello"})
        assert asked.json()["session_id"] == "conv-7"
        judged = client.post(
            ENDPOINT,
            json={"token": asked.headers[TOKEN_HEADER], "score": 1, "conversation_id": "conv-7"},
        )
        assert judged.status_code == 204, judged.text
    (feedback,) = spans_named(tracing, "feedback", 1)
    assert feedback.attributes["session.id"] == "conv-7"


def _streamed_and_socket_turns() -> Any:
    """A chat whose turn opens inside its streamed body, after the headers went out,
    and the same over a WebSocket: each names its turn in the answer itself."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    async def answer(question: str) -> Any:
        with neatlogs_web.trace("turn", input=question):
            yield "data: Hello\n\n"
            yield f"event: feedback\ndata: {neatlogs_web.feedback_token()}\n\n"

    async def chat(request: Request) -> StreamingResponse:
        return StreamingResponse(answer(request.query_params["q"]), media_type="text/event-stream")

    async def socket_chat(websocket: WebSocket) -> None:
        await websocket.accept()
        async for question in websocket.iter_text():
            with neatlogs_web.trace("turn", input=question):
                await websocket.send_json({"text": "Hello", "token": neatlogs_web.feedback_token()})

    return Starlette(routes=[Route("/chat", chat), WebSocketRoute("/ws", socket_chat)])


def test_an_answer_names_its_turn_in_its_body_when_its_headers_went_out_first(
    tracing: OTLPReceiver,
) -> None:
    from websockets.sync.client import connect

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    assert neatlogs_web.feedback_token() is None  # outside a request
    app = NeatlogsSessionMiddleware(_streamed_and_socket_turns(), secret_key="k", feedback=True)
    with (
        run_uvicorn(app) as base,
        httpx.Client(base_url=base) as alice,
        httpx.Client(base_url=base) as mallory,
    ):
        streamed = alice.get("/chat", params={"q": "streamed"})
        assert TOKEN_HEADER not in streamed.headers  # the turn began after the headers
        token = streamed.text.split("event: feedback\ndata: ")[1].split("\n")[0]
        cookie = f"neatlogs_session={alice.cookies['neatlogs_session']}"
        with connect(
            base.replace("http", "ws", 1) + "/ws", additional_headers={"Cookie": cookie}
        ) as ws:
            ws.send("over a socket")
            socket_token = json.loads(ws.recv(timeout=10))["token"]
        mallory.get("/chat", params={"q": "mallory's"})
        refused = mallory.post(ENDPOINT, json={"token": token, "score": 0})
        assert refused.status_code == 403 and refused.json()["error"] == "wrong_session"
        for judged, score in ((token, 0), (socket_token, 1)):
            sent = alice.post(ENDPOINT, json={"token": judged, "score": score})
            assert sent.status_code == 204, sent.text
    turns = {s.attributes["input.value"]: s for s in spans_named(tracing, "turn", 3)}
    feedback = spans_named(tracing, "feedback", 2)
    assert len(feedback) == 2
    judged = {
        (s.trace_id, s.parent_span_id): s.attributes["neatlogs.feedback.score"] for s in feedback
    }
    assert judged == {
        (turns["streamed"].trace_id, turns["streamed"].span_id): 0,
        (turns["over a socket"].trace_id, turns["over a socket"].span_id): 1,
    }
    session = turns["streamed"].attributes["session.id"]
    assert {s.attributes["session.id"] for s in feedback} == {session}
    assert turns["over a socket"].attributes["session.id"] == session


def test_a_wsgi_body_that_opens_its_turn_names_it(tracing: OTLPReceiver) -> None:
    """The server pulls a WSGI body after the app returned: each step runs where the
    middleware's tokens are, as the app did."""
    from flask import Flask, Response

    from neatlogs_web.wsgi import NeatlogsSessionMiddleware as WsgiSessions

    app = Flask(__name__)

    @app.get("/chat")
    def chat() -> Response:
        def answer() -> Iterator[str]:
            with neatlogs_web.trace("turn", input="streamed"):
                yield "data: Hello\n\n"
                yield f"event: feedback\ndata: {neatlogs_web.feedback_token()}\n\n"

        return Response(answer(), mimetype="text/event-stream")

    app.wsgi_app = WsgiSessions(app.wsgi_app, secret_key="k", feedback=True)  # type: ignore[method-assign]
    with run_waitress(app) as base, httpx.Client(base_url=base) as alice:
        streamed = alice.get("/chat")
        token = streamed.text.split("event: feedback\ndata: ")[1].split("\n")[0]
        judged = alice.post(ENDPOINT, json={"token": token, "score": 1})
        assert judged.status_code == 204, (token, judged.text)
    (feedback,) = spans_named(tracing, "feedback", 1)
    (turn,) = spans_named(tracing, "turn", 1)
    assert (feedback.trace_id, feedback.parent_span_id) == (turn.trace_id, turn.span_id)


def test_a_token_names_the_session_its_turn_carries(tracing: OTLPReceiver) -> None:
    """A turn the app runs in another session (``with session(...)``) is judged from
    that session, as its token says, not from the one the request came with."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    async def chat(request: Request) -> PlainTextResponse:
        with neatlogs_web.session("conv-42"), neatlogs_web.trace("turn", input="in conv-42"):
            return PlainTextResponse("hello")

    app = NeatlogsSessionMiddleware(
        Starlette(routes=[Route("/chat", chat)]),
        secret_key="k",
        feedback=True,
        conversation_query="conversation_id",
    )
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as alice:
        token = alice.get("/chat").headers[TOKEN_HEADER]
        from_cookie = alice.post(ENDPOINT, json={"token": token, "score": 0})
        in_conversation = alice.post(
            ENDPOINT, params={"conversation_id": "conv-42"}, json={"token": token, "score": 1}
        )
    assert (from_cookie.status_code, from_cookie.json()["error"]) == (403, "wrong_session")
    assert in_conversation.status_code == 204
    (feedback,) = spans_named(tracing, "feedback", 1)
    (turn,) = spans_named(tracing, "turn", 1)
    assert feedback.attributes["session.id"] == turn.attributes["session.id"] == "conv-42"
    assert feedback.attributes["neatlogs.feedback.score"] == 1


def test_turns_run_side_by_side_each_name_their_own(tracing: OTLPReceiver) -> None:
    """A WebSocket's messages handled in tasks of their own: the token a turn asks
    for names that turn, though another began since."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket
    from websockets.sync.client import connect

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(text: str) -> None:
            with neatlogs_web.trace("turn", input=text):
                await asyncio.sleep(0.4 if text == "slow" else 0)
                await websocket.send_json({"text": text, "token": neatlogs_web.feedback_token()})

        async for text in websocket.iter_text():
            tasks.add(asyncio.create_task(answer(text)))
        await asyncio.gather(*tasks)

    app = NeatlogsSessionMiddleware(
        Starlette(routes=[WebSocketRoute("/ws", chat)]), secret_key="k", feedback=True
    )
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as alice:
        alice.get("/ws-cookie")  # a 404 that sets the tab's session cookie
        cookie = f"neatlogs_session={alice.cookies['neatlogs_session']}"
        url = base.replace("http", "ws", 1) + "/ws"
        with connect(url, additional_headers={"Cookie": cookie}) as socket:
            socket.send("slow")
            time.sleep(0.1)  # the quick one's turn begins while the slow one's runs
            socket.send("quick")
            replies = [json.loads(socket.recv(timeout=10)) for _ in range(2)]
        for reply in replies:
            judged = alice.post(ENDPOINT, json={"token": reply["token"], "label": reply["text"]})
            assert judged.status_code == 204, judged.text
    turns = {s.span_id: s for s in spans_named(tracing, "turn", 2)}
    for feedback in spans_named(tracing, "feedback", 2):
        turn = turns[feedback.parent_span_id]
        assert turn.attributes["input.value"] == feedback.attributes["neatlogs.feedback.label"]


def test_when_confirmed_conversations_are_judged_where_the_app_confirms_them(
    tracing: OTLPReceiver,
) -> None:
    """The built-in endpoint runs before the app could authorize a conversation, so
    it judges no conversation turn under ``when_confirmed``; the app's own route
    that confirms the conversation first does."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from neatlogs_web.asgi import NeatlogsSessionMiddleware

    async def chat(request: Request) -> PlainTextResponse:
        neatlogs_web.confirm_conversation(request.path_params["conversation_id"])
        with neatlogs_web.trace("turn", input="in the conversation"):
            return PlainTextResponse(neatlogs_web.feedback_token() or "")

    async def rate(request: Request) -> PlainTextResponse:
        neatlogs_web.confirm_conversation(request.path_params["conversation_id"])
        body = await request.json()
        neatlogs_web.record_feedback(body["token"], score=body["score"])
        return PlainTextResponse("recorded")

    app = NeatlogsSessionMiddleware(
        Starlette(
            routes=[
                Route("/chat/{conversation_id}", chat),
                Route("/rate/{conversation_id}", rate, methods=["POST"]),
            ]
        ),
        secret_key="k",
        feedback=True,
        conversation_paths=["/chat/{conversation_id}", "/rate/{conversation_id}"],
        conversation_query="conversation_id",
        conversation_binding="when_confirmed",
    )
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as alice:
        token = alice.get("/chat/conv-1").text
        built_in = alice.post(
            ENDPOINT, params={"conversation_id": "conv-1"}, json={"token": token, "score": 0}
        )
        own = alice.post("/rate/conv-1", json={"token": token, "score": 1})
    assert (built_in.status_code, built_in.json()["error"]) == (403, "wrong_session")
    assert own.text == "recorded"
    (feedback,) = spans_named(tracing, "feedback", 1)
    assert feedback.attributes["session.id"] == "conv-1"
    assert feedback.attributes["neatlogs.feedback.score"] == 1
