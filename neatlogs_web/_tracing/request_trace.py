"""A request's trace: the framework's request span and the request's turns.

Tracing's state for one request (:class:`RequestTrace`) is tracing's own,
not the session binding's: the session layer knows sessions, not spans. The
adapters start it as the request arrives (:func:`start_request`) and end it
when the app returns; it lives in a ``ContextVar`` of its own, so everything
the request hands work to (tasks, threads, streamed bodies) carries it with
the binding, and an OpenTelemetry middleware inside ours that replaces the
OpenTelemetry context does not lose it.

A server may start a request inside another request's context (see
``neatlogs_web._web.clean_start``). Such a context still holds the other
request's trace, since this ``ContextVar`` travels with it whatever an
OpenTelemetry middleware inside ours did to the OpenTelemetry context; so a
request that finds a trace already current starts from an empty
OpenTelemetry context, and none of the other request's spans becomes a
parent of its own. A context an OpenTelemetry middleware outside ours made
for this request (it extracts the request's own ``traceparent`` into a fresh
context) holds no trace of ours, and that middleware's server span stays
the parent.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Final, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, SpanContext
from opentelemetry.util.types import AttributeValue

from neatlogs_web._session.binding import SessionBinding
from neatlogs_web._tracing.felt_latency import ResponseTimes

__all__ = [
    "RequestTrace",
    "Turn",
    "current_request_trace",
    "end_held_turns",
    "end_request",
    "in_turn",
    "make_current",
    "restore_current",
    "start_request",
    "turn_context",
    "turn_in_effect",
]

# Holds the Turn whose trace() block a context is inside: only a trace() span
# makes a trace() nested; a framework's span does not.
_IN_TURN_KEY: Final = otel_context.create_key("neatlogs_web.in_turn")


class Turn(NamedTuple):
    """A turn as its request and its block know it: the root span of its trace, and
    the session it carries."""

    span_context: SpanContext
    session_id: str | None


_current: Final[ContextVar[RequestTrace | None]] = ContextVar(
    "neatlogs_web_request_trace", default=None
)


class RequestTrace:
    """What tracing knows of one request: its framework span and its turns."""

    __slots__ = (
        "__weakref__",
        "answered_turn",
        "awaits_span",
        "binding",
        "context",
        "each_message_is_a_turn",
        "held_turn",
        "last_turn",
        "span",
        "span_carries_session",
        "times",
        "tokens",
    )

    #: What :func:`start_request` replaced, for :func:`end_request` to restore.
    tokens: tuple[Token[Context] | None, Token[RequestTrace | None]]

    def __init__(self, context: Context, span: Span | None, times: ResponseTimes | None) -> None:
        #: The OpenTelemetry context the request runs in.
        self.context = context

        #: The request's own binding, whose session the request span carries (a
        #: WebSocket message's binding in a block of its own does not change it).
        self.binding: SessionBinding | None = None
        #: The framework's request span: recording in the context the request
        #: arrived in (FastAPI's, an OpenTelemetry middleware's outside ours), or
        #: the first server span started in it (an instrumentation inside ours).
        self.span = span
        #: Whether a server span starting inside the request is the request's own.
        self.awaits_span = False
        #: Whether the request span carries the session: a turn made it its own, or a
        #: WebSocket connection's span ran a turn of its session (stamped either way).
        self.span_carries_session = False
        #: A WebSocket connection: each message's turn is a trace of its own, linked
        #: to the connection's span, rather than one more part of the first turn.
        self.each_message_is_a_turn = False
        #: The latest turn started in the request.
        self.last_turn: Turn | None = None
        #: When the request arrived and its response went out, for an adapter that
        #: notes them (felt latency); ``None`` when none does.
        self.times = times
        #: The latest turn, ended but held until the answer is out (its end time as
        #: its block ended), so that it can still carry the felt latency.
        self.held_turn: tuple[Span, int] | None = None
        #: The latest turn as the answer went out, and the figures for it, should
        #: its block still be running (one that encloses the whole exchange).
        self.answered_turn: tuple[SpanContext, Mapping[str, AttributeValue]] | None = None

    @property
    def last_trace_id(self) -> int | None:
        """The trace id of the latest turn started in the request."""
        return None if self.last_turn is None else self.last_turn.span_context.trace_id

    def note_turn(self, turn: Turn) -> None:
        """A turn started in the request: the response names the latest one."""
        self.last_turn = turn

    def hold_turn(self, span: Span) -> bool:
        """Whether the turn ``span``, whose block just ended, is held open until the
        answer is out (see :meth:`end_held_turn`) rather than ended now: the request's
        latest turn, while its answer is still going out. Only one is held. A
        turn whose block outlasted the answer gets the answer's figures now."""
        answered = self.answered_turn
        if answered is not None and span.get_span_context() == answered[0]:
            span.set_attributes(answered[1])
            return False
        times = self.times
        if (
            times is None
            or times.ended is not None
            or self.each_message_is_a_turn
            or self.last_turn is None
            or span.get_span_context() != self.last_turn.span_context
            or not span.is_recording()
        ):
            return False
        self.end_held_turn()
        self.held_turn = (span, time.time_ns())
        _holding.add(self)
        return True

    def answer_out(self, figures: Mapping[str, AttributeValue]) -> None:
        """The answer is out: ``figures`` go on the latest turn, held or, should its
        block still run, as it ends."""
        if self.last_turn is not None:
            self.answered_turn = (self.last_turn.span_context, figures)
        self.end_held_turn(figures)

    def end_held_turn(self, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """End the held turn, if any, at the moment its block ended, ``attributes`` set first."""
        held, self.held_turn = self.held_turn, None
        if held is None:
            return
        _holding.discard(self)
        span, block_ended = held
        if attributes:
            span.set_attributes(attributes)
        span.end(end_time=block_ended)

    def recording_span(self) -> Span | None:
        """The request span, while it still records."""
        span = self.span
        return span if span is not None and span.is_recording() else None


#: The requests whose latest turn is held for its answer.
_holding: Final[weakref.WeakSet[RequestTrace]] = weakref.WeakSet()


def end_held_turns() -> None:
    """End every turn still held for its answer, with what was noted of it: the
    process is stopping, and an answer it has not seen out (a body the server wrote
    but had not closed yet) must not keep its turn from the last flush."""
    for request in list(_holding):
        times = request.times
        request.end_held_turn(times.attributes() if times is not None else None)


def start_request(times: ResponseTimes | None = None) -> RequestTrace:
    """Start the arriving request's trace and make it current; undo with
    :func:`end_request`. A context that was another request's is left for an
    empty one, so none of that request's spans becomes a parent of this one's.
    An adapter that notes when its response goes out passes ``times``."""
    arrived = otel_context.get_current()
    active = _recording_span(arrived)
    entered: Token[Context] | None = None
    if _current.get() is not None or (active is not None and not _starts_here(active)):
        arrived, active = Context(), None
        entered = otel_context.attach(arrived)
    trace = RequestTrace(arrived, active, times)
    trace.tokens = (entered, _current.set(trace))
    return trace


def _recording_span(context: Context) -> Span | None:
    """The span recording in ``context``, if any."""
    if not context:
        return None  # the usual arrival: nothing current at all
    span = otel_trace.get_current_span(context)
    return span if span.is_recording() else None


def _starts_here(span: Span) -> bool:
    """Whether ``span``, active as a request arrives, can be that request's own: one
    that starts a trace here (no parent, or a caller's across the network).

    A span whose parent is in this process was started inside other work. The
    OpenTelemetry ASGI middleware outside ours starts a request's span as a
    child of any span it finds active; where the server started the request
    inside another (a pipelined request started from a send() of a middleware
    outside ours), that is the other request's.
    """
    if not isinstance(span, ReadableSpan):
        return True  # not the SDK's: no parent to tell by
    parent = span.parent
    return parent is None or parent.is_remote


def end_request(trace: RequestTrace) -> None:
    """Restore what was current before :func:`start_request`. A turn held for the
    answer stays held: the adapter ends it once the answer is out, which for a
    WSGI response is when the server closes the body, after the app returned."""
    entered, trace_token = trace.tokens
    try:
        _current.reset(trace_token)
    except ValueError:
        # A token of another context (a coroutine closed by the garbage collector):
        # that context dies with its task, so there is nothing to undo.
        return
    if entered is not None:
        otel_context.detach(entered)


def make_current(trace: RequestTrace | None) -> Token[RequestTrace | None]:
    """Make ``trace`` the request in effect for a step that runs apart from its
    request (the next part of a WSGI body, after :func:`end_request`), or no
    request's (``None``: the server's own code); undo with :func:`restore_current`."""
    return _current.set(trace)


def restore_current(token: Token[RequestTrace | None]) -> None:
    """Undo :func:`make_current`."""
    _current.reset(token)


def current_request_trace() -> RequestTrace | None:
    """The trace of the request in effect, or ``None`` outside requests."""
    return _current.get()


def in_turn(context: Context) -> bool:
    """Whether ``context`` is inside a ``trace()`` block."""
    return context.get(_IN_TURN_KEY) is not None


def turn_context(context: Context, turn: Turn) -> Context:
    """``context``, marked as inside the block of ``turn`` (a top-level ``trace()``)."""
    return otel_context.set_value(_IN_TURN_KEY, turn, context)


def turn_in_effect() -> Turn | None:
    """The turn whose block the caller runs in, if any: with turns run side by side
    (a WebSocket's messages in tasks of their own), each block's own."""
    turn = otel_context.get_value(_IN_TURN_KEY)
    return turn if isinstance(turn, Turn) else None
