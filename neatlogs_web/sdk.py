"""``init`` / ``trace`` / ``flush`` / ``shutdown`` over the OpenTelemetry SDK.

``init()`` builds one tracer provider with two processors: one that stamps the
current session on every span at start (ours and any instrumentation's), and
the batching export pipeline. ``trace()`` makes each top-level block a new
root trace, so one user turn is one trace in the session's timeline.
``flush()`` and ``shutdown()`` never wait longer than they are allowed: the
process stops within ``shutdown_timeout_s`` whatever the receiver does.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import INVALID_SPAN, Link, Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from neatlogs_web import _export, identity
from neatlogs_web._version import __version__
from neatlogs_web.context import (
    SessionBinding,
    current_binding,
    current_request_binding,
    set_default_session,
)
from neatlogs_web.sampling import session_sampler

__all__ = [
    "SESSION_KEY_PRESETS",
    "SessionSpanProcessor",
    "flush",
    "init",
    "shutdown",
    "stamp_span",
    "stats",
    "trace",
]

logger = logging.getLogger("neatlogs_web")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_ENDPOINT: Final = "http://127.0.0.1:4318"
DEFAULT_WORKFLOW: Final = "neatlogs-app"
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

# Marks an OpenTelemetry context as "inside a trace() block": only a trace()
# span is a parent to a trace(); a framework's request span is linked instead.
_IN_TRACE_KEY: Final = otel_context.create_key("neatlogs_web.in_trace")


class SessionSpanProcessor(SpanProcessor):
    """Stamps the session in effect on every span when it starts.

    Running in ``on_start`` means instrumentations need no cooperation: any
    span of this provider, started while a session is bound, carries it.
    """

    def __init__(self, session_keys: Sequence[str]) -> None:
        self.session_keys = tuple(session_keys)

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        binding = current_binding()
        if binding is None:
            return
        if binding.end_user_id is None and binding.previous_session_id is None:
            # stamp_span's common case inline: this runs for every span started.
            session_id = binding.session_id
            for key in self.session_keys:
                span.set_attribute(key, session_id)
        else:
            stamp_span(span, binding, self.session_keys)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def stamp_span(span: Span, binding: SessionBinding, keys: Sequence[str] | None = None) -> None:
    """Put the session attributes of ``binding`` on ``span``."""
    session_id = binding.session_id
    for key in keys if keys is not None else _session_keys():
        span.set_attribute(key, session_id)
    if binding.end_user_id is not None:
        span.set_attribute(END_USER_KEY, binding.end_user_id)
    if binding.previous_session_id is not None:
        parent = span.parent if isinstance(span, SdkSpan) else None
        if parent is None or parent.is_remote:
            span.set_attribute(PREVIOUS_SESSION_KEY, binding.previous_session_id)


class _Pipeline:
    """Everything one ``init()`` built, torn down together by ``shutdown()``."""

    def __init__(
        self,
        provider: TracerProvider,
        processor: _export.BoundedBatchProcessor | None,
        session_keys: tuple[str, ...],
        join_request_trace: bool,
        shutdown_timeout_s: float,
        init_arguments: dict[str, Any],
    ) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("neatlogs_web", __version__)
        self.processor = processor
        self.session_keys = session_keys
        self.join_request_trace = join_request_trace
        self.shutdown_timeout_s = shutdown_timeout_s
        self.init_arguments = init_arguments
        #: Seconds spent so far in the steps of stopping (lifespan, SIGTERM, atexit),
        #: which share one ``shutdown_timeout_s``.
        self.stopping_spent_s = 0.0

    def while_stopping(self, step: Callable[[float], bool]) -> bool:
        """Run one step of stopping with what is left of ``shutdown_timeout_s``.

        ``step`` gets a ``time.monotonic()`` deadline; the time it takes is
        spent, so lifespan shutdown, a SIGTERM handler and ``atexit`` together
        never take longer than the one budget.
        """
        # No lock: a SIGTERM handler may interrupt a step on the same thread.
        started = time.monotonic()
        try:
            return step(started + max(0.0, self.shutdown_timeout_s - self.stopping_spent_s))
        finally:
            self.stopping_spent_s += time.monotonic() - started


_pipeline: _Pipeline | None = None
_pipeline_lock = threading.Lock()
_atexit_registered = False


def _session_keys() -> tuple[str, ...]:
    pipeline = _pipeline
    return pipeline.session_keys if pipeline is not None else SESSION_KEY_PRESETS["default"]


def init(
    api_key: str | None = None,
    endpoint: str | None = None,
    workflow_name: str | None = None,
    *,
    auto_session: bool = False,
    session_id: str | None = None,
    exporter: SpanExporter | Literal["otlp", "console", "none"] | None = None,
    backend: Literal["neatlogs", "otlp"] | None = None,
    session_keys: str | Sequence[str] = "default",
    join_request_trace: bool = False,
    set_global_provider: bool = True,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    max_queue_size: int | None = None,
    max_export_batch_size: int | None = None,
    schedule_delay_ms: float | None = None,
    export_timeout_s: float | None = None,
    shutdown_timeout_s: float = 5.0,
    flush_on_sigterm: bool = True,
    sample_rate: float = 1.0,
) -> TracerProvider:
    """Set up tracing once, at startup. Returns the OpenTelemetry provider.

    ``api_key`` / ``endpoint`` default to ``NEATLOGS_API_KEY`` /
    ``NEATLOGS_ENDPOINT``; with neither endpoint nor exporter, spans go to the
    local collector (``neatlogs-web serve``) at http://127.0.0.1:4318.
    ``auto_session`` or ``session_id`` set a process default session for work
    no request covers. See the README for every option.
    """
    global _pipeline, _atexit_registered
    arguments = dict(locals())
    if auto_session and session_id is not None:
        raise ValueError("init() takes auto_session or session_id, not both: drop one")
    if session_id is not None and not identity.is_valid_session_id(session_id):
        raise ValueError("init(session_id=...) must be 1-128 characters of [A-Za-z0-9._:@/+=-]")
    keys = _resolve_session_keys(session_keys)
    api_key = api_key if api_key is not None else os.environ.get("NEATLOGS_API_KEY") or None
    endpoint = endpoint or os.environ.get("NEATLOGS_ENDPOINT") or DEFAULT_ENDPOINT
    if backend is None:
        backend = "neatlogs" if api_key else "otlp"
    if backend not in ("neatlogs", "otlp"):
        raise ValueError(f"backend must be 'neatlogs' or 'otlp', not {backend!r}")
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be between 0.0 and 1.0, not {sample_rate!r}")
    _check_export_options(max_queue_size, max_export_batch_size, shutdown_timeout_s)

    with _pipeline_lock:
        if _pipeline is not None:
            if _pipeline.init_arguments == arguments:
                return _pipeline.provider
            raise RuntimeError(
                "init() was already called with other options: call "
                "neatlogs_web.shutdown() first to set up tracing again"
            )
        workflow = workflow_name or DEFAULT_WORKFLOW
        resource = Resource.create(
            {
                **(resource_attributes or {}),
                "service.name": workflow,
                "neatlogs.workflow_name": workflow,
            }
        )
        provider = TracerProvider(
            resource=resource,
            sampler=session_sampler(sample_rate) if sample_rate < 1 else None,
            # Its atexit hook would wait on the exporter without a deadline: ours has one.
            shutdown_on_exit=False,
        )
        provider.add_span_processor(SessionSpanProcessor(keys))
        target = _export.build_target(
            exporter, endpoint=endpoint, api_key=api_key, timeout_s=export_timeout_s
        )
        processor = None
        if target is not None:
            processor = _export.BoundedBatchProcessor(
                _export.PipelineExporter(
                    target,
                    drop_transport_spans=backend == "neatlogs",
                    completion_markers=backend == "neatlogs",
                    session_keys=keys,
                ),
                max_queue_size=max_queue_size,
                max_export_batch_size=max_export_batch_size,
                schedule_delay_ms=schedule_delay_ms,
                export_timeout_s=export_timeout_s,
                shutdown_timeout_s=shutdown_timeout_s,
            )
            provider.add_span_processor(processor)
            target.voice.started()
        else:
            logger.info('neatlogs_web: exporter="none", spans are not sent anywhere')
        if set_global_provider:
            _install_global_provider(provider)
        _pipeline = _Pipeline(
            provider, processor, keys, join_request_trace, shutdown_timeout_s, arguments
        )
        set_default_session(
            identity.new_session_id() if auto_session else session_id,
        )
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
    if flush_on_sigterm:
        _flush_on_sigterm()
    logger.debug("neatlogs_web initialised: workflow=%s backend=%s", workflow, backend)
    return provider


def _flush_on_sigterm() -> None:
    """Flush before dying of SIGTERM when nobody else handles it.

    Python's default SIGTERM action skips ``atexit``; servers that install
    their own handler (uvicorn, gunicorn) keep it, and the ASGI middleware
    flushes at lifespan shutdown for those that re-raise the signal.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def flush_then_terminate(signum: int, frame: object) -> None:
        shutdown()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, flush_then_terminate)


def _check_export_options(
    max_queue_size: int | None, max_export_batch_size: int | None, shutdown_timeout_s: float
) -> None:
    if max_queue_size is not None and max_queue_size < 1:
        raise ValueError(f"max_queue_size must be at least 1, not {max_queue_size!r}")
    if max_export_batch_size is not None and max_export_batch_size < 1:
        raise ValueError(f"max_export_batch_size must be at least 1, not {max_export_batch_size!r}")
    if max_queue_size and max_export_batch_size and max_export_batch_size > max_queue_size:
        raise ValueError("max_export_batch_size must not exceed max_queue_size: lower it")
    if not shutdown_timeout_s >= 0:
        raise ValueError(
            f"shutdown_timeout_s must be 0 or more seconds, not {shutdown_timeout_s!r}"
        )


def _resolve_session_keys(session_keys: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(session_keys, str):
        if session_keys not in SESSION_KEY_PRESETS:
            raise ValueError(
                f"unknown session_keys preset {session_keys!r}: choose from "
                f"{', '.join(SESSION_KEY_PRESETS)} or pass a list of attribute keys"
            )
        return SESSION_KEY_PRESETS[session_keys]
    keys = tuple(session_keys)
    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise ValueError("session_keys must name at least one non-empty attribute key")
    return keys


def _install_global_provider(provider: TracerProvider) -> None:
    """Become the global provider if none is set, so instrumentations join in."""
    current = otel_trace.get_tracer_provider()
    if isinstance(current, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider):
        otel_trace.set_tracer_provider(provider)
    elif current is not provider:
        logger.info(
            "neatlogs_web: a global tracer provider is already set; spans of other "
            "instrumentations stay there (add neatlogs_web.SessionSpanProcessor to it "
            "to stamp sessions on them)"
        )


def flush(timeout_s: float | None = None) -> bool:
    """Export every queued span now, waiting at most ``timeout_s`` (default 30).

    ``True`` only when every span queued before the call was accepted by the
    receiver; ``False`` when one failed or time ran out (the export goes on
    in the background).
    """
    pipeline = _pipeline
    if pipeline is None or pipeline.processor is None:
        return True
    return pipeline.processor.flush_until(
        time.monotonic() + (timeout_s if timeout_s is not None else 30.0)
    )


def flush_at_exit() -> bool:
    """Flush within what is left of ``shutdown_timeout_s``; for the app's last moments.

    The ASGI middleware calls it at lifespan shutdown: it is spent from the
    same budget as the SIGTERM handler and ``atexit`` that may follow.
    """
    pipeline = _pipeline
    if pipeline is None or pipeline.processor is None:
        return True
    return pipeline.while_stopping(pipeline.processor.flush_before_exit)


def shutdown() -> None:
    """Flush and stop the pipeline within ``shutdown_timeout_s``; ``init()`` may follow."""
    global _pipeline
    with _pipeline_lock:
        pipeline, _pipeline = _pipeline, None
        set_default_session(None)
    if pipeline is None:
        return
    if pipeline.processor is not None:
        pipeline.while_stopping(pipeline.processor.close)
    pipeline.provider.shutdown()  # the stamper; ours is closed already


def stats() -> dict[str, Any]:
    """Export counters and skipped session values, for an operator's endpoint."""
    pipeline = _pipeline
    processor = pipeline.processor if pipeline is not None else None
    export = processor.stats.snapshot() if processor is not None else {}
    return {"export": export, "rejected": identity.rejection_counts()}


_warned_not_initialised = False


def _warn_not_initialised(name: str) -> None:
    """Say once that ``trace()`` records nothing until ``init()`` runs."""
    global _warned_not_initialised
    if not _warned_not_initialised:
        _warned_not_initialised = True
        logger.warning(
            "neatlogs_web.trace(%r) recorded nothing: call neatlogs_web.init() at "
            "startup, before the first trace()",
            name,
        )


class trace:
    """A span for a block or a function: ``with trace("turn"):`` or ``@trace("turn")``.

    At top level (no ``trace()`` around it) it starts a new root trace, even
    when a framework's request span is active; that span is recorded as a
    link. Nested, it is a child span. Exceptions are recorded and re-raised.
    """

    __slots__ = ("_attributes", "_name", "_span", "_token")

    def __init__(self, name: str, /, **attributes: AttributeValue) -> None:
        self._name = name
        self._attributes = attributes
        self._span: Span = INVALID_SPAN
        self._token: object = None

    def __enter__(self) -> Span:
        pipeline = _pipeline
        tracer = pipeline.tracer if pipeline is not None else otel_trace.get_tracer("neatlogs_web")
        current = otel_context.get_current()
        links: list[Link] = []
        parent = current
        top_level = current.get(_IN_TRACE_KEY) is None
        # An empty context has no span to link: skip the lookup (scripts, workers).
        if top_level and current and not (pipeline is not None and pipeline.join_request_trace):
            outer = otel_trace.get_current_span(current).get_span_context()
            if outer.is_valid:
                links.append(Link(outer))
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
            _warn_not_initialised(self._name)
        if top_level:
            # Lets the middleware tell the client which trace this turn was.
            binding = current_request_binding()
            if binding is not None:
                binding.last_trace_id = span.get_span_context().trace_id
        inner = otel_trace.set_span_in_context(span, current)
        if top_level:  # nested, the marker is already in the context
            inner = otel_context.set_value(_IN_TRACE_KEY, True, inner)
        self._token = otel_context.attach(inner)
        return span

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
        span.end()
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
        name, attributes = self._name, self._attributes
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with trace(name, **attributes):
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            with trace(name, **attributes):
                return fn(*args, **kwargs)

        return run
