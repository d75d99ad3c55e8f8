"""Different people over one keep-alive connection, as a reverse proxy sends them.

A proxy with upstream keep-alive (nginx ``keepalive``) sends one user's
request after another's on the same connection, or pipelines them. A round
here is three requests on one connection, each from someone else: an upload
large enough that reading it pauses the connection (the handler reads it
inside ``trace("turn-A")``), a health probe on an excluded path (traced as
``probe``), and a ``GET /whoami`` (traced as ``turn-C``). The app answers
what it saw: the bound session and the trace of the active span.

Served four times under one ASGI app, one stack per path prefix:

  /starlette/...     plain Starlette: no framework span
  /fastapi/...       FastAPI with its own telemetry: a server span per request,
                     started outside our middleware
  /otel-outside/...  the OpenTelemetry ASGI middleware outside ours
  /otel-inside/...   the OpenTelemetry ASGI middleware inside ours
  /otel-base/...     the OpenTelemetry ASGI middleware outermost, then
                     ``@app.middleware("http")`` (BaseHTTPMiddleware) outside
                     ours: the last send() of a request is theirs, not ours
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from fastapi import FastAPI
from opentelemetry import trace as otel_trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.otlp_receiver import ReceivedSpan

#: More than uvicorn's read buffer (64 KiB), so reading the body pauses the connection.
UPLOAD_BYTES = 2 * 1024 * 1024
STACKS = ("starlette", "fastapi", "otel-outside", "otel-inside", "otel-base")
#: Stacks where the server span of the request, started outside the handler, is its
#: parent. Not the OpenTelemetry middleware outside ours: it starts a request's span
#: as a child of any span it finds active, and where the server started the request
#: inside another, that is the other request's: the request leaves it behind.
SERVER_SPAN_STACKS = ("fastapi", "otel-inside")
SECRET = "connection-reuse"
#: Stacks where a middleware outside ours makes a span of its own current around its
#: call of the server's receive() and send() (the OpenTelemetry ASGI middleware's
#: "http receive" and "http send"; BaseHTTPMiddleware under it sends from its own
#: task): the connection's next request starts inside that span, out of our reach
#: (SECURITY.md). It still sees no session, and its own spans start clean.
SPAN_AROUND_THE_SERVER_STACKS = ("otel-outside", "otel-base")


def _seen() -> dict[str, str | None]:
    span_context = otel_trace.get_current_span().get_span_context()
    trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else None
    return {"session": neatlogs_web.current_session_id(), "trace": trace_id}


async def upload(request: Request) -> JSONResponse:
    with neatlogs_web.trace("turn-A", round=request.query_params["r"]):
        body = await request.body()
        seen = _seen()
    return JSONResponse({**seen, "bytes": len(body)})


async def healthz(request: Request) -> JSONResponse:
    seen = _seen()
    with neatlogs_web.trace("probe", round=request.query_params["r"]):
        return JSONResponse(seen)


async def whoami(request: Request) -> JSONResponse:
    seen = _seen()
    with neatlogs_web.trace("turn-C", round=request.query_params["r"]):
        return JSONResponse(seen)


def make_app(stack: str) -> Any:
    """One stack's app: ``upload``, ``healthz`` (excluded) and ``whoami``."""
    prefix = f"/{stack}"
    if stack == "fastapi":
        app: Any = FastAPI()
        app.add_api_route(f"{prefix}/upload", upload, methods=["POST"])
        app.add_api_route(f"{prefix}/healthz", healthz)
        app.add_api_route(f"{prefix}/whoami", whoami)
    else:
        routes = [
            Route(f"{prefix}/upload", upload, methods=["POST"]),
            Route(f"{prefix}/healthz", healthz),
            Route(f"{prefix}/whoami", whoami),
        ]
        app = Starlette(routes=routes)
    if stack == "otel-inside":
        app = OpenTelemetryMiddleware(app)
    app = NeatlogsSessionMiddleware(app, secret_key=SECRET, exclude_paths=[f"{prefix}/healthz"])
    if stack == "otel-base":
        app = BaseHTTPMiddleware(app, dispatch=_passthrough)
    if stack in ("otel-outside", "otel-base"):
        app = OpenTelemetryMiddleware(app)
    return app


async def _passthrough(request: Request, call_next: Any) -> Any:
    return await call_next(request)


#: Response header telling the session bound as the request reached the server's app,
#: outside every middleware: what a logging middleware outside ours would see.
ARRIVED_HEADER = "x-session-on-arrival"
#: The trace of the span active as the request reached the server's app.
ARRIVED_TRACE_HEADER = "x-trace-on-arrival"


class AllStacks:
    """Every stack under one ASGI app, routed by the first path segment; the
    lifespan goes to the Starlette one (ours flushes at shutdown), and
    ``/healthz`` answers here, for the servers' start-up check. Each answer
    tells the session bound as its request arrived, before any middleware."""

    def __init__(self) -> None:
        self.stacks = {stack: make_app(stack) for stack in STACKS}

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.stacks["starlette"](scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            arrived = neatlogs_web.current_session_id() or "-"
            arrived_span = otel_trace.get_current_span().get_span_context()
            in_trace = format(arrived_span.trace_id, "032x") if arrived_span.is_valid else "-"

            async def send_arrived(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    headers = [
                        (ARRIVED_HEADER.encode(), arrived.encode("latin-1")),
                        (ARRIVED_TRACE_HEADER.encode(), in_trace.encode("latin-1")),
                    ]
                    message["headers"] = [*message.get("headers", ()), *headers]
                await send(message)

            await self.stacks[scope["path"].split("/", 2)[1]](scope, receive, send_arrived)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    """An HTTP/1.1 request as bytes, for one keep-alive connection."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


def one_connection(base: str, requests: list[bytes], *, pipelined: bool) -> list[Answer]:
    """Send ``requests`` over one connection: each once the previous one is
    answered (keep-alive), or all at once (HTTP/1.1 pipelining)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        reader = sock.makefile("rb")
        if pipelined:
            sock.sendall(b"".join(requests))
            return [_read_answer(reader) for _ in requests]
        answers = []
        for request in requests:
            sock.sendall(request)
            answers.append(_read_answer(reader))
        return answers


def _read_answer(reader: BinaryIO) -> Answer:
    """One response with a Content-Length (every route here sends one) or chunked."""
    status = int(reader.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return Answer(status, headers, reader.read(int(headers["content-length"])))
    body = b""
    while size := int(reader.readline().strip(), 16):
        body += reader.read(size)
        reader.readline()
    reader.readline()
    return Answer(status, headers, body)


@dataclass
class Round:
    """What one connection's three people saw."""

    stack: str
    index: int
    answers: list[Answer]

    def requests_seen(self) -> Counter[str]:
        """Requests that saw another person's session or trace, by what they saw."""
        uploaded, probed, later = (answer.json() for answer in self.answers)
        seen: Counter[str] = Counter()
        seen["rounds"] += 1
        for answer in self.answers:
            if answer.headers.get(ARRIVED_HEADER, "-") != "-":
                seen["arrived_with_a_session"] += 1
            if (
                answer.headers.get(ARRIVED_TRACE_HEADER, "-") != "-"
                and self.stack not in SPAN_AROUND_THE_SERVER_STACKS
            ):
                seen["arrived_inside_a_span"] += 1
        if probed["session"] is not None:
            seen["excluded_with_a_session"] += 1
        if later["session"] is None or later["session"] == uploaded["session"]:
            seen["later_in_earlier_session"] += 1
        if uploaded["trace"] in (probed["trace"], later["trace"]):
            seen["later_in_earlier_trace"] += 1
        if self.stack in SERVER_SPAN_STACKS and None in (probed["trace"], later["trace"]):
            # The server span an OpenTelemetry middleware started for this request stays the parent.
            seen["server_span_lost"] += 1
        return seen


def send_round(base: str, stack: str, index: int, *, pipelined: bool) -> Round:
    query = f"?r={stack}-{index}"
    requests = [
        http_request("POST", f"/{stack}/upload{query}", b"x" * UPLOAD_BYTES),
        http_request("GET", f"/{stack}/healthz{query}"),
        http_request("GET", f"/{stack}/whoami{query}"),
    ]
    return Round(stack, index, one_connection(base, requests, pipelined=pipelined))


def spans_astray(spans: list[ReceivedSpan], rounds: list[Round]) -> Counter[str]:
    """From the exported spans, by trace: a later request's span in the first
    person's trace, a span in the probe's trace (an excluded request) carrying a
    session, a span in a person's trace carrying another's session."""
    by_trace: dict[str, list[ReceivedSpan]] = {}
    by_round: dict[str, dict[str, ReceivedSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
        if "round" in span.attributes:
            by_round.setdefault(str(span.attributes["round"]), {})[span.name] = span
    astray: Counter[str] = Counter()
    for one in rounds:
        mine = by_round.get(f"{one.stack}-{one.index}", {})
        if set(mine) != {"turn-A", "probe", "turn-C"}:
            astray["spans_missing"] += 3 - len(set(mine) & {"turn-A", "probe", "turn-C"})
            continue
        turn_a, probe, turn_c = mine["turn-A"], mine["probe"], mine["turn-C"]
        astray["spans_in_earlier_trace"] += (probe.trace_id == turn_a.trace_id) + (
            turn_c.trace_id == turn_a.trace_id
        )
        owners = [
            (turn_a.trace_id, one.answers[0].json()["session"]),
            (probe.trace_id, None),
            (turn_c.trace_id, one.answers[2].json()["session"]),
        ]
        for trace_id, owner in owners:
            for span in by_trace[trace_id]:
                session = span.attributes.get("session.id")
                if session is not None and session != owner:
                    astray[
                        f"spans_in_{'probe' if owner is None else 'turn'}_trace_in_wrong_session"
                    ] += 1
    return astray
