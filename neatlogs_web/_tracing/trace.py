"""``trace()``: one user turn is one trace, whatever traces the request itself.

A top-level ``trace()`` (no ``trace()`` around it) is a turn; nested ones
are its steps. When a framework traces each request itself (FastAPI does by
default, and the OpenTelemetry ASGI and WSGI middlewares), its request span
is already the root of a trace when the turn starts. Two traces per turn
would double every session, so by default the turn joins that trace: the
``trace()`` span is the turn, under the framework's spans, and the request
span, the trace's root, becomes the turn's carrier. It keeps its own name
and what it knew (route, method, status, errors), and takes the session, the
chain kind and the turn's input and output, because Phoenix and the local
collector read a trace's root. So the turn is named once, by its
``trace()``. Toward the neatlogs backend, which drops transport spans, the
turn is a root of its own that links the request span instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import INVALID_SPAN, Link, Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from neatlogs_web._session.binding import (
    collecting_garbage,
    current_request_binding,
    current_session_id,
)
from neatlogs_web._tracing import setup
from neatlogs_web._tracing.conventions import SpanKind, check_kind, set_input, set_kind
from neatlogs_web._tracing.felt_latency import MessageWait
from neatlogs_web._tracing.request_trace import (
    RequestTrace,
    Turn,
    current_request_trace,
    in_turn,
    turn_context,
)
from neatlogs_web._tracing.stamping import claim_for_turn, stamp_connection_for_turn

__all__ = ["trace"]

P = ParamSpec("P")
R = TypeVar("R")

#: What a request span takes from the turn it carries, when the turn ends.
_TURN_KEYS: Final = (
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
    "neatlogs.input.value",
    "neatlogs.output.value",
)


class trace:
    """A span for a block or a function: ``with trace("turn"):`` or ``@trace("turn")``.

    At top level it is a turn: a new trace, or a part of the framework's request
    trace (see the module's docstring). Nested, it is a child span. ``kind`` marks
    an LLM call, a tool call, a retrieval, ...; ``input`` is what the user or
    caller said (set the output with :func:`neatlogs_web.set_output`).
    Exceptions are recorded and re-raised.
    """

    __slots__ = (
        "_attributes",
        "_input",
        "_kind",
        "_message_wait",
        "_name",
        "_request",
        "_request_span",
        "_span",
        "_token",
    )

    def __init__(
        self,
        name: str,
        /,
        *,
        kind: SpanKind | None = None,
        input: object = None,
        **attributes: AttributeValue,
    ) -> None:
        self._name = name
        self._kind = None if kind is None else check_kind(kind)
        self._input = input
        self._attributes = attributes
        self._span: Span = INVALID_SPAN
        self._request_span: Span | None = None
        self._token: object = None
        #: The request a top-level turn started in, which may hold it open (felt latency).
        self._request: RequestTrace | None = None
        #: A WebSocket message's turn: the wait for its replies.
        self._message_wait: MessageWait | None = None

    def __enter__(self) -> Span:
        pipeline = setup.active_pipeline()
        tracer = pipeline.tracer if pipeline is not None else setup.tracer_before_init()
        current = otel_context.get_current()
        request = current_request_trace()
        if collecting_garbage():
            # A finalizer of something a request abandoned: no request's trace is its parent.
            current, request = otel_context.Context(), None
        top_level = not in_turn(current)
        parent = current
        links: list[Link] = []
        if top_level:
            binding = current_request_binding()
            if request is not None and binding is not None and request.each_message_is_a_turn:
                stamp_connection_for_turn(request, binding)  # a WebSocket message's turn
            outer = otel_trace.get_current_span(current)
            if outer.get_span_context().is_valid:
                if self._joins(outer, request, pipeline):
                    if request is not None and binding is not None:
                        self._request_span = claim_for_turn(request, binding)
                else:
                    links.append(Link(outer.get_span_context()))
                    parent = otel_trace.set_span_in_context(INVALID_SPAN, current)
        span = tracer.start_span(
            self._name,
            context=parent,
            attributes=self._attributes or None,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = span
        if pipeline is None and not span.is_recording():
            setup.warn_not_initialised(self._name)
        if self._kind is not None:
            set_kind(self._kind, span)
        if self._input is not None:
            set_input(self._input, span)
        inner = otel_trace.set_span_in_context(span, current)
        if top_level:  # nested, the marker is already in the context
            turn = Turn(span.get_span_context(), current_session_id())
            inner = turn_context(inner, turn)
            if request is not None:
                # Lets the middleware tell the client which trace this turn was.
                request.note_turn(turn)
                self._request = request
                if request.each_message_is_a_turn and request.times is not None:
                    self._message_wait = MessageWait.begin(request.times)
        self._token = otel_context.attach(inner)
        return span

    @staticmethod
    def _joins(outer: Span, request: RequestTrace | None, pipeline: setup.Pipeline | None) -> bool:
        """Whether a turn under ``outer`` (a framework's span) joins its trace,
        rather than starting one of its own that links it."""
        if request is not None and request.each_message_is_a_turn:
            return False  # a WebSocket message's turn
        if pipeline is None:
            return True
        return pipeline.join_request_trace and not _sent_elsewhere(outer, pipeline.provider)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if exc is not None and isinstance(exc, Exception):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        # A turn that failed ends now: its answer is an error page, and a framework
        # may keep the response in a cycle with the exception until the garbage
        # collector runs, which would hold the turn back as long. A turn cut short
        # (the person left: cancelled, or its generator closed) is held: its
        # answer will never be complete, and it says so.
        failed = isinstance(exc, Exception)
        if self._message_wait is not None:  # a WebSocket message's turn
            span.set_attributes(self._message_wait.end(failed=failed))
        request = self._request
        held = not failed and request is not None and request.hold_turn(span)
        if not held:
            span.end()
        if self._request_span is not None and isinstance(span, ReadableSpan):
            turn = span.attributes or {}
            self._request_span.set_attributes({k: turn[k] for k in _TURN_KEYS if k in turn})
        otel_context.detach(self._token)  # type: ignore[arg-type]

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function: one span per call."""
        name, kind, given, attributes = self._name, self._kind, self._input, self._attributes
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with trace(name, kind=kind, input=given, **attributes):
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            with trace(name, kind=kind, input=given, **attributes):
                return fn(*args, **kwargs)

        return run


def _sent_elsewhere(span: Span, provider: TracerProvider) -> bool:
    """Whether ``span`` is an SDK span of a provider we do not export: an earlier
    ``init()``'s left global, or the app's when ours is not. A turn under it would
    hang under a parent never sent, so it starts a trace of its own, linked."""
    # A provider hands its one Resource to every span it makes.
    return isinstance(span, ReadableSpan) and span.resource is not provider.resource
