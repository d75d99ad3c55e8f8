"""The session on the app's spans: stamped as each span starts, and on the request's span.

:class:`SessionSpanProcessor` runs in ``on_start``, so instrumentations need
no cooperation: any span of the app's work (a ``trace()`` block, an LLM or
database call an instrumentation traced), started while a session is bound,
carries it. A web framework's own spans are the exception (see
``framework_spans``): a request in which only they happened (a health probe,
a static file) is no part of a conversation and must not become a session
in a backend. So the session reaches a request's trace through the app's
work only: the framework's request span carries it once a turn made it its
own, the framework's other spans never (with ``init(request_traces="all")``
every span carries it, as every request is then in the session). The
request span is stamped again whenever ``bind_session()`` changes the
request's session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import Span

from neatlogs_web._session.binding import SessionBinding, current_binding
from neatlogs_web._session.rebinding import on_rebind
from neatlogs_web._tracing.conventions import set_kind
from neatlogs_web._tracing.framework_spans import is_framework_span
from neatlogs_web._tracing.request_trace import RequestTrace, current_request_trace, in_turn

__all__ = [
    "END_USER_KEY_PRESETS",
    "SESSION_KEY_PRESETS",
    "ExportingSessionProcessor",
    "SessionSpanProcessor",
    "active_stamper",
    "claim_for_turn",
    "make_each_message_a_turn",
    "note_request_binding",
    "stamp_connection_for_turn",
    "stamp_span",
    "use_stamper",
]

END_USER_KEY: Final = "neatlogs.end_user.id"
PREVIOUS_SESSION_KEY: Final = "session.previous_id"

#: Attribute keys that carry the session id, per backend. ``"default"`` feeds
#: OpenTelemetry semantic conventions (Phoenix, the local collector) and the
#: neatlogs backend at once.
SESSION_KEY_PRESETS: Final[Mapping[str, tuple[str, ...]]] = {
    "default": ("session.id", "neatlogs.session.id"),
    "neatlogs": ("neatlogs.session.id",),
    "opentelemetry": ("session.id",),
    "langfuse": ("langfuse.session.id",),
    "genai": ("gen_ai.conversation.id",),
    "langsmith": ("langsmith.metadata.session_id",),
}

#: Attribute keys that carry the end user's id, per backend, named like the
#: session presets. Not ``user.id`` toward the neatlogs backend: it reads that
#: key as the operator.
END_USER_KEY_PRESETS: Final[Mapping[str, tuple[str, ...]]] = {
    "default": (END_USER_KEY, "user.id"),
    "neatlogs": (END_USER_KEY,),
    "opentelemetry": ("user.id",),
    "langfuse": ("langfuse.user.id",),
    "genai": ("user.id",),
    "langsmith": ("langsmith.metadata.user_id",),
}


class SessionSpanProcessor(SpanProcessor):
    """Stamps the session in effect on each span of the app's work when it starts.

    Add it to a provider of your own with ``provider.add_span_processor(...)``;
    ``init()`` adds one to the provider it uses, the app's own included.
    ``stamps_every_request`` puts the session on a web framework's spans too,
    even when no turn ran in the request (``init(request_traces="all")``).
    """

    def __init__(
        self,
        session_keys: Sequence[str] = SESSION_KEY_PRESETS["default"],
        end_user_keys: Sequence[str] = END_USER_KEY_PRESETS["default"],
        *,
        stamps_every_request: bool = False,
    ) -> None:
        self.session_keys = tuple(session_keys)
        self.end_user_keys = tuple(end_user_keys)
        self.stamps_every_request = stamps_every_request
        self._stamping = True

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        binding = current_binding()
        if binding is None or not self._stamping:
            return
        if self._carries_session(span):
            stamp_span(span, binding, self)

    def _carries_session(self, span: SdkSpan) -> bool:
        """Whether ``span`` carries the session from its start: a span of the app's
        work does; a web framework's own span only when every request is in the
        session. The request's span may carry it later, when a turn claims it."""
        trace = current_request_trace()
        if trace is not None and trace.awaits_span and _is_request_span(span):
            # The request's own span, started by an instrumentation inside ours
            # (maybe after spans of other middlewares).
            trace.awaits_span = False
            trace.span = span
            return trace.span_carries_session or self.stamps_every_request
        if is_framework_span(span):
            return self.stamps_every_request
        return True

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        self.stop_stamping()

    def stop_stamping(self) -> None:
        """A provider we do not own outlives our ``shutdown()``: stop stamping its spans."""
        self._stamping = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ExportingSessionProcessor(SessionSpanProcessor):
    """The one processor ``init()`` adds when it exports: it stamps each span as it
    starts, like any :class:`SessionSpanProcessor`, and hands it to ``export`` as it
    ends (the SDK calls each processor of a provider for every span)."""

    def __init__(
        self,
        session_keys: Sequence[str],
        end_user_keys: Sequence[str],
        *,
        stamps_every_request: bool,
        export: SpanProcessor,
    ) -> None:
        super().__init__(session_keys, end_user_keys, stamps_every_request=stamps_every_request)
        self.export = export

    def on_end(self, span: ReadableSpan) -> None:
        self.export.on_end(span)

    def shutdown(self) -> None:
        super().shutdown()
        self.export.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.export.force_flush(timeout_millis)


def stamp_span(span: Span, binding: SessionBinding, stamper: SessionSpanProcessor) -> None:
    """Put the session attributes of ``binding`` on ``span``, under ``stamper``'s keys."""
    session_id = binding.session_id
    for key in stamper.session_keys:
        span.set_attribute(key, session_id)
    if binding.end_user_id is not None:
        for key in stamper.end_user_keys:
            span.set_attribute(key, binding.end_user_id)
    if binding.previous_session_id is not None:
        parent = span.parent if isinstance(span, SdkSpan) else None
        if parent is None or parent.is_remote:
            span.set_attribute(PREVIOUS_SESSION_KEY, binding.previous_session_id)


def _is_request_span(span: SdkSpan) -> bool:
    """A server span that starts a trace here: a framework's or an instrumentation's
    span for an incoming request (its parent, if any, is the caller's)."""
    if span.kind is not otel_trace.SpanKind.SERVER:
        return False
    parent = span.parent
    return parent is None or parent.is_remote


_default_stamper: Final = SessionSpanProcessor()
_active: SessionSpanProcessor = _default_stamper


def use_stamper(stamper: SessionSpanProcessor | None) -> None:
    """Make ``stamper``'s keys the ones request spans are stamped under (``init()``);
    ``None`` goes back to the defaults (``shutdown()``)."""
    global _active
    _active = stamper if stamper is not None else _default_stamper


def active_stamper() -> SessionSpanProcessor:
    """The stamper ``init()`` set up, or the default one."""
    return _active


def note_request_binding(trace: RequestTrace, binding: SessionBinding) -> None:
    """The request is bound to ``binding``: its framework span, active as it arrived
    (FastAPI's, an OpenTelemetry middleware's outside ours), is stamped where it
    carries the session (a ``trace()`` around the whole request, or every request
    traced); without one, the span an instrumentation inside ours starts is awaited."""
    trace.binding = binding
    active = trace.span
    if active is None:
        trace.awaits_span = True  # an instrumentation inside ours starts it later
        return
    if in_turn(trace.context):
        trace.span_carries_session = True  # a trace() around the whole request: it is the turn
    if trace.span_carries_session or _active.stamps_every_request:
        stamp_span(active, binding, _active)


def make_each_message_a_turn(trace: RequestTrace) -> None:
    """A WebSocket connection is many turns: each message's is a trace of its own,
    linked to the connection's span, which carries the session once a message's
    turn ran in it (:func:`stamp_connection_for_turn`)."""
    trace.each_message_is_a_turn = True


def stamp_connection_for_turn(trace: RequestTrace, binding: SessionBinding) -> None:
    """A WebSocket message's turn, in the connection's own session: the connection's
    span, which the message turns link to, carries that session from now on. A
    connection whose messages ran no turn, or only turns of other sessions (each
    message naming its conversation), stays out of its session."""
    if trace.span_carries_session or binding is not trace.binding:
        return
    span = trace.recording_span()
    if span is not None:
        trace.span_carries_session = True  # stamped now, and re-stamped on a rebind
        stamp_span(span, binding, _active)


def claim_for_turn(trace: RequestTrace, binding: SessionBinding) -> Span | None:
    """The request's framework span, made the carrier of this turn: it keeps its
    name and is stamped with the session and marked as a chain, for backends that
    read a trace's root; the turn copies its input and output onto it as it ends.
    Only the request's first turn claims it."""
    if trace.span_carries_session:
        return None
    span = trace.recording_span()
    if span is None:
        return None
    trace.span_carries_session = True
    stamp_span(span, binding, _active)
    set_kind("chain", span)
    return span


def _restamp_request_span(binding: SessionBinding) -> None:
    """``bind_session()`` changed the request's session: its span follows."""
    trace = current_request_trace()
    if trace is None or binding is not trace.binding:
        return
    span = trace.recording_span()
    if span is not None and (trace.span_carries_session or _active.stamps_every_request):
        stamp_span(span, binding, _active)


on_rebind(_restamp_request_span)
