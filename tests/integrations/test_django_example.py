"""``examples/django`` runs as its README says, and its turns land in their conversations.

Each turn carries what was asked and what was answered; a socket reply names
its turn (the feedback token) for a judgment over HTTP in the turn's
conversation; a streamed reply is served without Django's warning about the
wrong kind of iterator; nothing is
lost when the server stops right after the last turn. The README's install
line brings everything the ASGI server needs for the chat page's WebSocket.

Started from ``examples/django`` under uvicorn (views and the Channels
socket) and gunicorn (views), with spans exported to a real OTLP receiver.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.install_lines import installed_by, pip_install_arguments
from tests.integrations._processes import django_server
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import ROOT

EXAMPLE = ROOT / "examples" / "django"


def _reply(socket: ClientConnection) -> list[dict[str, object]]:
    """Every message of one streamed reply, up to its ``done``."""
    replies = [json.loads(socket.recv(timeout=10))]
    while not replies[-1].get("done"):
        replies.append(json.loads(socket.recv(timeout=10)))
    return replies


def _turns(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == "turn"]


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-gthread"])
def test_the_django_example_traces_each_turn_in_its_conversation(
    server: str, receiver: OTLPReceiver, tmp_path: Path
) -> None:
    env = {"NEATLOGS_ENDPOINT": receiver.url}
    asgi = server == "uvicorn"
    with django_server(
        server,
        env,
        tmp_path / "server.log",
        wsgi="chatsite.wsgi:application",
        asgi="chatsite.asgi:application",
        cwd=EXAMPLE,
    ) as base:
        page = httpx.get(base + "/", timeout=20)
        cookie_session = page.cookies["neatlogs_session"].rsplit(".", 2)[0]
        answers = [
            httpx.get(f"{base}/chat/conv-1/", params={"q": "hello"}, timeout=20).json(),
            httpx.get(f"{base}/chat/conv-1/async", params={"q": "again"}, timeout=20).json(),
        ]
        streamed = httpx.get(f"{base}/chat/conv-1/stream", params={"q": "stream"}, timeout=20)
        sessions = {answer["session"] for answer in answers}
        turns = 3
        if asgi:
            ws = base.replace("http://", "ws://") + "/ws/chat/conv-2/"
            with connect(ws, open_timeout=10) as socket:
                socket.send(json.dumps({"text": "over the socket"}))
                connection = _reply(socket)
                socket.send(json.dumps({"text": "elsewhere", "conversation_id": "conv-3"}))
                other = _reply(socket)
            assert {reply["session"] for reply in other} == {"conv-3"}
            judgment = {"token": other[-1]["feedback"], "score": 1}
            feedback = f"{base}/neatlogs/feedback"
            refused = httpx.post(feedback, params={"conversation_id": "conv-2"}, json=judgment)
            assert refused.json()["error"] == "wrong_session"
            judged = httpx.post(feedback, params={"conversation_id": "conv-3"}, json=judgment)
            assert judged.status_code == 204, judged.text
            sessions |= {reply["session"] for reply in connection}
            turns = 5
    # Stopped with SIGTERM right after the last turn: the spans still queued were
    # flushed on the way out (uvicorn: at lifespan shutdown; gunicorn: at exit).
    spans = receiver.wait_for(lambda got: len(_turns(got)) >= turns, timeout_s=2)

    log = (tmp_path / "server.log").read_text()
    assert "StreamingHttpResponse must consume" not in log, log
    assert cookie_session in page.text
    assert "data: You " in streamed.text
    assert sessions == ({"conv-1", "conv-2"} if asgi else {"conv-1"})
    assert all(span.attributes.get("session.id") for span in spans)
    by_session: dict[str, list[str]] = {}
    for span in _turns(spans):
        asked = span.attributes["input.value"]
        assert span.attributes["output.value"] == f"You said: {asked}", span.attributes
        by_session.setdefault(span.attributes["session.id"], []).append(
            span.attributes["input.value"]
        )
    expected = {"conv-1": ["again", "hello", "stream"]}
    if asgi:
        expected |= {"conv-2": ["over the socket"], "conv-3": ["elsewhere"]}
    assert {session: sorted(inputs) for session, inputs in by_session.items()} == expected
    votes = [span for span in spans if span.name == "feedback"]
    if asgi:  # the judgment of the turn in conv-3, under it
        (elsewhere,) = [span for span in _turns(spans) if span.attributes["session.id"] == "conv-3"]
        assert [(vote.trace_id, vote.parent_span_id) for vote in votes] == [
            (elsewhere.trace_id, elsewhere.span_id)
        ]
    else:
        assert votes == []


def test_the_django_example_install_line_brings_a_websocket_library() -> None:
    """uvicorn answers a WebSocket with 404 when neither library is installed."""
    readme = (EXAMPLE / "README.md").read_text()
    first, *_ = pip_install_arguments(readme)
    brought = installed_by(first)
    assert {"django", "channels", "uvicorn"} <= brought, brought
    assert brought & {"websockets", "wsproto"}, f"{first} brings no WebSocket library"
