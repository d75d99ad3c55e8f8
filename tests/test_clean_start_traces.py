"""Two people on one connection are two traces, whatever sits outside our middleware.

uvicorn starts a pipelined request from inside the previous response's last
``send()``, and, after a large body, from the socket reader the previous
request's ``receive()`` re-armed. What runs outside ours then starts the
next request: an OpenTelemetry ASGI middleware, FastAPI's own telemetry, an
app's middleware that opens a span of its own, or a ``trace()`` around ours.
Person B's spans must be in B's trace, never under A's span, and B's turn
must join B's request span. Spans decoded from a real OTLP receiver.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from opentelemetry import trace as otel_trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.apps import TracedRequests
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.servers import run_uvicorn

SESSIONS = {"secret_key": "connection-traces", "trust_plain_header": True}
#: Past uvicorn's 64 KiB read buffer: reading it pauses the connection.
LARGE_BODY = b"x" * 200_000
SERVER = 2  # OTLP numbers span kinds from UNSPECIFIED = 0


async def chat(request: Request) -> PlainTextResponse:
    await request.body()
    with neatlogs_web.trace("turn", user=request.path_params["user"]):
        return PlainTextResponse(neatlogs_web.current_session_id())


ROUTES = [Route("/chat/{user}", chat, methods=["GET", "POST"])]


def person(scope: Any) -> str:
    """Who sent the request: the last part of its path."""
    return str(scope["path"]).rsplit("/", 1)[-1]


def outer_span(app: Any) -> Any:
    """An app's middleware that opens a span of its own around ours."""
    tracer = otel_trace.get_tracer("outer")

    async def with_span(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        attributes = {"user": person(scope)}
        with tracer.start_as_current_span(f"outer {scope['path']}", attributes=attributes):
            await app(scope, receive, send)

    return with_span


def fastapi_app() -> Any:
    app = FastAPI()  # its own telemetry starts a server span outside our middleware
    app.router.routes.extend(ROUTES)
    app.add_middleware(NeatlogsSessionMiddleware, **SESSIONS)
    return app


def ours() -> Any:
    return NeatlogsSessionMiddleware(Starlette(routes=ROUTES), **SESSIONS)


OUTSIDE: dict[str, Callable[[], Any]] = {
    "opentelemetry-asgi": lambda: OpenTelemetryMiddleware(ours()),
    "fastapi-telemetry": fastapi_app,
    "app-span": lambda: outer_span(ours()),
    "trace-block": lambda: TracedRequests(
        ours(), "outer-turn", lambda scope: {"user": person(scope)}
    ),
}


def http(method: str, user: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} /chat/{user} HTTP/1.1\r\nHost: test\r\n"
        f"X-Neatlogs-Session-Id: person-{user}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def answers(sock: socket.socket, count: int) -> list[bytes]:
    """The bodies of ``count`` responses read from ``sock`` (Content-Length framed)."""
    buffer, found = b"", []
    while len(found) < count:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
        while b"\r\n\r\n" in buffer:
            head, rest = buffer.split(b"\r\n\r\n", 1)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(rest) < length:
                break
            found.append(rest[:length])
            buffer = rest[length:]
    return found


def person_a_then_b(base: str, wire: str) -> list[bytes]:
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        if wire == "pipelined":
            sock.sendall(http("GET", "A") + http("GET", "B"))
            return answers(sock, 2)
        sock.sendall(http("POST", "A", LARGE_BODY))
        first = answers(sock, 1)
        sock.sendall(http("GET", "B"))
        return first + answers(sock, 1)


def person_of(span: ReceivedSpan) -> str | None:
    if "user" in span.attributes:
        return str(span.attributes["user"])
    for key in ("url.path", "http.target"):
        if key in span.attributes:
            return str(span.attributes[key]).rsplit("/", 1)[-1]
    return None


@pytest.fixture(params=sorted(OUTSIDE))
def outside(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["pipelined", "after-a-large-body"])
def wire(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def served(outside: str, tracing: OTLPReceiver) -> Iterator[str]:
    with run_uvicorn(OUTSIDE[outside](), loop="asyncio", http="h11") as base:
        yield base


def request_spans(spans: list[ReceivedSpan]) -> dict[str | None, ReceivedSpan]:
    """Each person's request span, as an instrumentation outside ours started it."""
    return {
        person_of(s): s
        for s in spans
        if ("url.path" in s.attributes or "http.target" in s.attributes)
        and not s.name.endswith(("send", "receive"))
    }


def test_the_next_person_on_a_connection_is_a_trace_of_their_own(
    served: str, wire: str, outside: str, tracing: OTLPReceiver
) -> None:
    assert person_a_then_b(served, wire) == [b"person-A", b"person-B"]
    requests_traced = outside in ("opentelemetry-asgi", "fastapi-telemetry")
    spans = tracing.wait_for(
        lambda got: (
            sum(s.name == "turn" for s in got) == 2
            and len(request_spans(got)) == (2 if requests_traced else 0)
        )
    )

    people_per_trace: dict[str, set[str]] = {}
    for span in spans:
        person = person_of(span)
        if person is not None:
            people_per_trace.setdefault(span.trace_id, set()).add(person)
    assert all(len(people) == 1 for people in people_per_trace.values()), people_per_trace
    turns = {person_of(s): s for s in spans if s.name == "turn"}
    assert turns["A"].attributes["session.id"] == "person-A"
    assert turns["B"].attributes["session.id"] == "person-B"
    if outside == "opentelemetry-asgi" and wire == "after-a-large-body":
        # Its "http receive" span is current around the server's receive(), which
        # re-arms the socket reader: B's request starts under it (SECURITY.md), in
        # no one's trace but that span's.
        return
    for person, request_span in request_spans(spans).items():
        # Each turn joins its person's own request span: one trace per turn.
        assert request_span.kind == SERVER
        assert request_span.parent_span_id == ""
        assert turns[person].trace_id == request_span.trace_id, person
