"""A chat over WebSockets on uvicorn, many connections at once.

Each connection gets its session from its handshake (signed header, query,
path, or a new one echoed in the handshake response); messages that name a
conversation are handled in that conversation's session, the others in the
connection's. Every message's spans carry the session it was handled in.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.sync.client import connect

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.integrations.websockets import message_session
from tests.otlp_receiver import OTLPReceiver
from tests.servers import run_uvicorn
from tests.tokens import make_token, session_of

SECRET = "ws-secret"
MESSAGES_PER_CONNECTION = 6


def make_app() -> Starlette:
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        async for message in websocket.iter_json():
            with (
                message_session(message.get("conversation_id")) as session_id,
                neatlogs_web.trace("ws_turn", message=message["text"]),
                neatlogs_web.trace("ws_reply"),
            ):
                await websocket.send_json({"session_id": session_id})

    app = Starlette(
        routes=[WebSocketRoute("/ws", chat), WebSocketRoute("/ws/{conversation_id}", chat)]
    )
    app.add_middleware(
        NeatlogsSessionMiddleware,
        secret_key=SECRET,
        conversation_paths=["/ws/{conversation_id}"],
        conversation_query="conversation",
    )
    return app


def handshakes(base: str) -> list[tuple[str, dict[str, str], str | None]]:
    """(url, headers, expected connection session or None for a new one)."""
    ws = base.replace("http://", "ws://")
    cases: list[tuple[str, dict[str, str], str | None]] = []
    for index in range(3):
        token = make_token(f"header-{index}", SECRET)
        cases.append((f"{ws}/ws", {"X-Neatlogs-Session-Id": token}, f"header-{index}"))
        cases.append((f"{ws}/ws?conversation=query-{index}", {}, f"query-{index}"))
        cases.append((f"{ws}/ws/path-{index}", {}, f"path-{index}"))
        cases.append((f"{ws}/ws", {}, None))
    return cases


def converse(
    index: int, url: str, headers: dict[str, str], expected: str | None
) -> tuple[str, dict[str, str]]:
    """Send messages, every other one naming a conversation; return what each expects."""
    expectations: dict[str, str] = {}
    with connect(url, additional_headers=headers) as socket:
        response = socket.response
        assert response is not None
        if expected is None:
            expected = session_of(response.headers["x-neatlogs-session-id"])
        for number in range(MESSAGES_PER_CONNECTION):
            text = f"c{index}-m{number}"
            message: dict[str, Any] = {"text": text}
            want = expected
            if number % 2:
                want = message["conversation_id"] = f"conv-{index}-{number % 3}"
            socket.send(json.dumps(message))
            assert json.loads(socket.recv(timeout=10))["session_id"] == want
            expectations[text] = want
    return expected, expectations


def test_concurrent_connections_every_message_in_its_session(tracing: OTLPReceiver) -> None:
    with run_uvicorn(make_app()) as base:
        cases = handshakes(base)
        with ThreadPoolExecutor(max_workers=len(cases)) as pool:
            results = list(pool.map(converse, range(len(cases)), *zip(*cases, strict=True)))
    connection_sessions = [session for session, _ in results]
    assert len(set(connection_sessions)) == len(cases)
    expected = {text: want for _, per_message in results for text, want in per_message.items()}
    neatlogs_web.flush()
    total = 2 * len(expected)
    spans = tracing.wait_for(lambda s: len(s) >= total)
    assert len(spans) == total
    turn_session = {
        s.trace_id: expected[s.attributes["message"]] for s in spans if s.name == "ws_turn"
    }
    assert len(turn_session) == len(expected)
    for span in spans:
        assert span.attributes["session.id"] == turn_session[span.trace_id], span.name


def test_invalid_or_missing_ids_keep_the_connections_session(tracing: OTLPReceiver) -> None:
    before = neatlogs_web.stats()["rejected"].get("websocket_message.invalid", 0)
    messages: list[dict[str, Any]] = [
        {"text": "a", "conversation_id": "bad id"},
        {"text": "b", "conversation_id": ["not", "a", "string"]},
        {"text": "c", "conversation_id": 7},
        {"text": "d"},
    ]
    replies = []
    with (
        run_uvicorn(make_app()) as base,
        connect(base.replace("http://", "ws://") + "/ws/conn-1") as socket,
    ):
        for message in messages:
            socket.send(json.dumps(message))
            replies.append(json.loads(socket.recv(timeout=10))["session_id"])
    assert replies == ["conn-1", "conn-1", "7", "conn-1"]
    assert neatlogs_web.stats()["rejected"]["websocket_message.invalid"] == before + 2
    # Each message's turn is traced in the session its reply named.
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: sum(x.name == "ws_turn" for x in s) >= 4)
    turns = {
        s.attributes["message"]: s.attributes["session.id"] for s in spans if s.name == "ws_turn"
    }
    assert turns == {"a": "conn-1", "b": "conn-1", "c": "7", "d": "conn-1"}


def test_a_message_naming_its_conversation_is_a_turn_of_its_own(tracing: OTLPReceiver) -> None:
    """Under an instrumentation that traces the connection, a message handled in its
    conversation's session is still its own trace, linked to the connection's span."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app = make_app()
    app.add_middleware(OpenTelemetryMiddleware)
    with run_uvicorn(app) as base, connect(base.replace("http://", "ws://") + "/ws") as socket:
        for index in range(3):
            socket.send(json.dumps({"text": f"hi {index}", "conversation_id": f"conv-{index}"}))
            assert json.loads(socket.recv())["session_id"] == f"conv-{index}"
    assert neatlogs_web.flush()
    spans = tracing.wait_for(
        lambda s: sum(x.name == "ws_turn" for x in s) >= 3 and any(x.kind == 2 for x in s)
    )
    (connection,) = [s for s in spans if s.kind == 2]  # OTLP's SERVER
    turns = [s for s in spans if s.name == "ws_turn"]
    assert sorted(t.attributes["session.id"] for t in turns) == ["conv-0", "conv-1", "conv-2"]
    for turn in turns:
        assert turn.parent_span_id == ""
        assert turn.trace_id != connection.trace_id
        assert turn.links == [(connection.trace_id, connection.span_id)]
