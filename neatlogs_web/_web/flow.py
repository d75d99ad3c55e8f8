"""What the ASGI and WSGI adapters share: from a request's session to its trace.

The adapters do the protocol I/O (read headers, read a body, change the
response) and ask the session resolver (``_session.resolver``) which session
the request is in: from the headers, path and query, or, when it asks for
the body (``NeedsBody``), from what the adapter reads. The steps both take
then are here, once:

1. :meth:`RequestFlow.open` makes the request's binding and tells tracing
   about it (the framework's request span, a WebSocket's separate turns);
2. should anything of ours fail on the way, :meth:`RequestFlow.fallback`
   gives a fresh session that cannot fail: never an error page;
3. :meth:`RequestFlow.response_headers` says what the response gets
   (``Set-Cookie``, the echoed token, the turn's trace id);
4. once the answer is out, :meth:`RequestFlow.answer_out` puts what the
   person waited for on the request's latest turn (``_tracing.felt_latency``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from neatlogs_web._session.binding import SessionBinding
from neatlogs_web._session.counters import internal_error, reject
from neatlogs_web._session.ids import is_valid_session_id
from neatlogs_web._session.options import SessionConfig
from neatlogs_web._session.resolution import Resolution
from neatlogs_web._session.resolver import SessionResolver
from neatlogs_web._tracing.feedback import feedback_turn
from neatlogs_web._tracing.request_trace import RequestTrace
from neatlogs_web._tracing.stamping import make_each_message_a_turn, note_request_binding

__all__ = ["RequestFlow"]

RequestT = TypeVar("RequestT")


class RequestFlow(Generic[RequestT]):
    """One middleware's way from a request (an ASGI scope, a WSGI environ) to its session."""

    def __init__(
        self, config: SessionConfig, end_user: Callable[[RequestT], str | None] | None
    ) -> None:
        self.resolver = SessionResolver(config)
        self.end_user = end_user

    def header_fields(self) -> list[tuple[str, str]]:
        """Each request header the sources in use read (lower case), and the
        :class:`RequestInputs` field it fills."""
        resolver, config = self.resolver, self.resolver.config
        fields = [
            ("cookie", "cookie", resolver.reads_cookie),
            (config.header_name.lower(), "session_header", resolver.reads_session_header),
            ("baggage", "baggage", resolver.reads_baggage),
            (
                (config.conversation_header or "").lower(),
                "conversation_header",
                resolver.reads_conversation_header,
            ),
        ]
        return [(header, field) for header, field, read in fields if read]

    def open(
        self, resolution: Resolution, request: RequestT, trace: RequestTrace, *, websocket: bool
    ) -> SessionBinding:
        """The request's binding, made known to the request's ``trace``."""
        binding = SessionBinding(
            resolution.session_id,
            self._end_user_id(request),
            resolution.previous_session_id,
            resolution.pending_conversation_id,
            confirms_conversations=self.resolver.confirms_conversations,
        )
        note_request_binding(trace, binding)
        if websocket:
            make_each_message_a_turn(trace)
        return binding

    def _end_user_id(self, request: RequestT) -> str | None:
        """What the app's ``end_user`` callable says of the request: an error or an
        invalid id is counted, never raised, and stamps no end user."""
        if self.end_user is None:
            return None
        try:
            value = self.end_user(request)
        except Exception:
            reject("end_user", "error")
            return None
        if value is not None and not (isinstance(value, str) and is_valid_session_id(value)):
            reject("end_user", "invalid")
            return None
        return value

    def fallback(
        self, where: str, trace: RequestTrace, *, websocket: bool
    ) -> tuple[Resolution, SessionBinding]:
        """After an error of ours (logged once, counted): a fresh session that needs
        nothing that could fail, not persisted (no cookie, no token)."""
        internal_error(where)
        resolution = self.resolver.fallback()
        binding = SessionBinding(resolution.session_id)
        if websocket:
            make_each_message_a_turn(trace)
        return resolution, binding

    def answer_out(self, trace: RequestTrace) -> None:
        """The answer is out (or never will be): what the person waited for goes on
        the request's latest turn (``_tracing.felt_latency``), and the turn held for
        it ends. Once: a turn that ends later (a background task's) is not held.
        Not for a WebSocket: its turns are its messages."""
        times, trace.times = trace.times, None
        if times is None or trace.last_turn is None or trace.each_message_is_a_turn:
            return
        figures = times.attributes()
        trace.answer_out(figures)
        carrier = trace.recording_span() if trace.span_carries_session else None
        if carrier is not None:
            carrier.set_attributes(figures)

    def response_headers(
        self, resolution: Resolution, trace: RequestTrace
    ) -> list[tuple[str, str]]:
        """Headers the response gets: ``Set-Cookie``, the echoed token, the turn's trace id."""
        response = self.resolver.response
        turn = feedback_turn(trace) if response.feedback_tokens is not None else None
        return response.headers(resolution, trace.last_trace_id, turn)
