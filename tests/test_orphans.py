"""Work no request owns any more runs in no session, never in another user's.

A generator a request left unfinished is finalized later, wherever its last
reference goes: by the garbage collector during another user's request, or
by another request dropping it. Its ``finally:`` must not trace into that
user's session or trace. Driven through the ASGI middleware on asyncio and
uvloop, across loop restarts; the spans are decoded from a real receiver.
(The same on real servers, behind BaseHTTPMiddleware and GZipMiddleware:
``tests/reliability/test_isolation_matrix.py``.)
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import uvloop

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.otlp_receiver import OTLPReceiver

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


class ChatApp:
    """Routes that park a half-read stream, drop it, or collect garbage,
    each in its caller's session; what each ``finally:`` saw is kept."""

    def __init__(self) -> None:
        self.parked: list[Any] = []
        self.sessions: dict[str, str | None] = {}
        self.seen_in_finally: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        self.sessions[path] = neatlogs_web.current_session_id()
        with neatlogs_web.trace(path.strip("/")):
            if path == "/park-async":
                stream = self._async_stream()
                await stream.__anext__()
                self.parked.append(stream)  # a registry of live streams, say
            elif path == "/park-async-cycle":
                stream = self._async_stream()
                await stream.__anext__()
                cycle: list[Any] = [stream]
                cycle.append(cycle)  # only the collector will find it
            elif path == "/park-sync":
                plain = self._plain_stream()
                next(plain)
                cycle = [plain]
                cycle.append(cycle)
            elif path == "/drop":
                self.parked.clear()  # the last reference goes, in this request
            elif path == "/collect":
                gc.collect()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def _finally(self) -> None:
        with neatlogs_web.trace("abandoned"):
            self.seen_in_finally.append(neatlogs_web.current_session_id())

    async def _async_stream(self) -> AsyncIterator[str]:
        try:
            while True:
                yield "token"
        finally:
            self._finally()

    def _plain_stream(self) -> Iterator[str]:
        try:
            while True:
                yield "token"
        finally:
            self._finally()


async def get(app: Any, path: str) -> None:
    """One request from a new client (no cookie: a new session)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    await app(scope, receive, send)


async def leave_then_finalize(app: Any, park: str, finalize: str) -> None:
    await get(app, park)
    await get(app, finalize)
    for _ in range(5):  # the loop runs the scheduled aclose()
        await asyncio.sleep(0)


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Collect only where the test says, inside another user's request."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def assert_finalized_in_no_session(chat: ChatApp, receiver: OTLPReceiver, rounds: int) -> None:
    other = {chat.sessions["/drop"], chat.sessions["/collect"]} - {None}
    assert other, "the finalizing request had a session of its own"
    assert chat.seen_in_finally == [None] * rounds
    neatlogs_web.flush()
    spans = receiver.wait_for(lambda s: sum(x.name == "abandoned" for x in s) >= rounds)
    abandoned = [s for s in spans if s.name == "abandoned"]
    assert len(abandoned) == rounds
    finalizing = {s.trace_id for s in spans if s.name in ("drop", "collect")}
    for span in abandoned:
        assert "session.id" not in span.attributes, span.attributes
        assert "neatlogs.session.id" not in span.attributes
        # Not a child in the other user's trace either: a root of its own.
        assert span.parent_span_id == ""
        assert span.trace_id not in finalizing


@pytest.mark.parametrize("loop", LOOPS, ids=list(LOOPS))
def test_a_stream_dropped_in_another_request_is_closed_in_no_session(
    loop: str, tracing: OTLPReceiver
) -> None:
    chat = ChatApp()
    app = NeatlogsSessionMiddleware(chat, secret_key="orphans")
    # Twice on one loop, which restores its hooks each time it stops, then on a fresh one.
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        for _ in range(2):
            runner.run(get(app, "/collect"))  # the finalizing request has a session too
            runner.run(leave_then_finalize(app, "/park-async", "/drop"))
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(leave_then_finalize(app, "/park-async", "/drop"))
    assert_finalized_in_no_session(chat, tracing, rounds=3)


def collected_in_another_request(loop: str, park: str, receiver: OTLPReceiver) -> None:
    chat = ChatApp()
    app = NeatlogsSessionMiddleware(chat, secret_key="orphans")
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(get(app, "/drop"))
        runner.run(leave_then_finalize(app, park, "/collect"))
    assert_finalized_in_no_session(chat, receiver, rounds=1)


@pytest.mark.parametrize("loop", LOOPS, ids=list(LOOPS))
def test_a_stream_collected_in_another_request_is_closed_in_no_session(
    loop: str, tracing: OTLPReceiver, no_automatic_gc: None
) -> None:
    collected_in_another_request(loop, "/park-async-cycle", tracing)


def test_a_plain_generator_collected_in_another_request_is_closed_in_no_session(
    tracing: OTLPReceiver, no_automatic_gc: None
) -> None:
    collected_in_another_request("asyncio", "/park-sync", tracing)
