"""A request starts clean: code the server or the event loop runs is outside every request.

An ASGI server runs some of its own code inside a request's task, and what
that code registers keeps the request's context: asyncio copies the current
``contextvars`` context into every callback and task it creates. So a server
may start a request in another request's context:

- uvicorn pauses reading a connection while a large body waits; the
  request's ``receive()`` resumes it, and asyncio registers the socket reader
  in that request's context: the next request on that keep-alive connection
  (another person, behind a proxy that reuses connections) starts there.
- A pipelined request is started from inside the previous response's last
  ``send()``, on uvicorn, uvloop and daphne alike.

Two rules close it. The server's ``receive()`` and ``send()`` run outside
the request (:func:`receive_outside_request`, :func:`send_outside_request`):
no session bound, no request's trace current and no span active, so what
the server's code starts there (the connection's next request) carries
nobody's session and is in nobody's trace. And a request that finds another
request's trace current in the context it starts in
(``neatlogs_web._tracing.request_trace.start_request``) leaves that
request's OpenTelemetry context for an empty one, while binding its own
session, "no session" included, over whatever it inherited.

Outside ours, a middleware's send and receive wrappers run with the server's
code, in that same empty context: a span they start there is a root of its
own. The OpenTelemetry ASGI middleware's ``http send`` and ``http receive``
spans are such spans. They could have their request span back only if the
server's code ran with that span current too, and then the connection's
next request would start inside it, in another person's trace: put ours
outside the instrumentation (SECURITY.md) to keep both. A middleware outside
ours that makes its own span current around its call of the server's
``send()`` runs the server's code inside that span: beyond our reach.

The other place is the loop's finalizer for abandoned async generators.
When a client leaves mid-stream, the response's async generator can be left
suspended at a ``yield``: Starlette's ``BaseHTTPMiddleware`` cancels the send
the body waits in, not the generator, and ``iterate_in_threadpool`` (a
``StreamingResponse`` over a plain iterator) is left the same way on any
stack. When its last reference goes, during some other request (the garbage
collector runs inside whatever code allocates), the event loop's finalizer
hook (asyncio's and uvloop's alike) schedules ``agen.aclose()`` with
``call_soon_threadsafe``, which captures the context current at that moment:
the other request's. The generator's ``finally:`` would then trace into
that user's session, as a child of that user's active span.

The hook is wrapped so it runs in an empty ``contextvars.Context``: the
``aclose()`` task starts with no session bound and no active span, so spans
in that ``finally:`` carry no session rather than someone else's. Restoring
the generator's own request instead would mean remembering a context per
generator at first iteration, and CPython clears weak references before the
finalizer runs, so there is no cheap, leak-free place to keep it.

Hooks are per thread, and asyncio and uvloop install theirs each time a loop
starts running (restoring the previous ones when it stops), so the ASGI
middleware checks on every call: one ``sys.get_asyncgen_hooks()`` when the
hook is already ours.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from contextvars import Token
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from neatlogs_web._session.binding import SessionBinding, bind, unbind
from neatlogs_web._tracing.request_trace import RequestTrace, make_current, restore_current

__all__ = [
    "guard_event_loop",
    "receive_outside_request",
    "send_outside_request",
]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Finalizer = Callable[[AsyncGenerator[Any, Any]], object]

#: The OpenTelemetry context the server's own code runs in: nothing in it.
_OUTSIDE_REQUESTS: Final = Context()


class _FinalizeOutsideRequests:
    """The loop's finalizer hook, run in an empty context."""

    __slots__ = ("original",)

    def __init__(self, original: Finalizer) -> None:
        self.original = original

    def __call__(self, agen: AsyncGenerator[Any, Any]) -> None:
        contextvars.Context().run(self.original, agen)


def guard_event_loop() -> None:
    """Have this thread's running event loop finalize abandoned async generators
    in no request's context; a no-op when already done or when no hook is set."""
    finalizer = sys.get_asyncgen_hooks().finalizer
    if type(finalizer) is not _FinalizeOutsideRequests and finalizer is not None:
        sys.set_asyncgen_hooks(finalizer=_FinalizeOutsideRequests(finalizer))


def receive_outside_request(receive: Receive, after_receive: Callable[[Message], None]) -> Receive:
    """The server's ``receive``, run outside the request: a socket reader it
    re-arms there carries nobody's session, trace or span to the connection's
    next request. ``after_receive`` sees each message (a WebSocket message's arrival)."""

    async def receive_outside() -> Message:
        outside = _leave_request()
        try:
            message = await receive()
        finally:
            _return_to_request(outside)
        after_receive(message)
        return message

    return receive_outside


def send_outside_request(send: Send, before_send: Callable[[Message], None]) -> Send:
    """The server's ``send``, run outside the request: a pipelined request it
    starts there carries nobody's session, trace or span. ``before_send`` sees
    each message as it is handed over (the felt latency of the request's turn)."""

    async def send_outside(message: Message) -> None:
        before_send(message)
        outside = _leave_request()
        try:
            await send(message)
        finally:
            _return_to_request(outside)

    return send_outside


#: What :func:`_leave_request` replaced, for :func:`_return_to_request` to restore:
#: the binding, the request's trace, and the OpenTelemetry context (``None`` when
#: the current one was empty: nothing to leave).
_Left = tuple[Token[SessionBinding | None], Token[RequestTrace | None], Token[Context] | None]


def _leave_request() -> _Left:
    """No session bound, no request's trace current, no span active: where the
    server's own code runs."""
    otel = otel_context.attach(_OUTSIDE_REQUESTS) if otel_context.get_current() else None
    return bind(None), make_current(None), otel


def _return_to_request(left: _Left) -> None:
    binding, trace, otel = left
    if otel is not None:
        otel_context.detach(otel)
    restore_current(trace)
    unbind(binding)
