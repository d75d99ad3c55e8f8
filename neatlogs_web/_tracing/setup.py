"""``init`` / ``trace`` / ``flush`` / ``shutdown`` over the OpenTelemetry SDK.

``init()`` builds a tracer provider (or joins the one the app set up) and
adds one processor of ours: it stamps the current session on every span at
start (ours and any instrumentation's) and, unless ``exporter="none"``, hands
ended spans to the batching export pipeline. ``trace()`` makes each top-level
block a new root trace, so one user turn is one trace in the session's
timeline.
``flush()`` and ``shutdown()`` never wait longer than they are allowed: the
process stops within ``shutdown_timeout_s`` whatever the receiver does.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from neatlogs_web._export import exporter as _export
from neatlogs_web._session.binding import (
    SessionBinding,
    current_binding,
    set_default_session,
)
from neatlogs_web._session.counters import internal_error_counts, rejection_counts
from neatlogs_web._session.ids import is_valid_session_id, new_session_id
from neatlogs_web._tracing.providers import ProviderChoice, choose_provider, install_global_provider
from neatlogs_web._version import __version__

__all__ = [
    "END_USER_KEY_PRESETS",
    "SESSION_KEY_PRESETS",
    "SessionSpanProcessor",
    "flush",
    "init",
    "shutdown",
    "stamp_span",
    "stats",
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
    """Stamps the session in effect on every span when it starts.

    Running in ``on_start`` means instrumentations need no cooperation: any
    span of this provider, started while a session is bound, carries it.
    Add it to a provider of your own with ``provider.add_span_processor(...)``;
    ``init()`` adds it to the provider it uses, the app's own included (inside
    its export processor when it exports).
    """

    def __init__(
        self,
        session_keys: Sequence[str] = SESSION_KEY_PRESETS["default"],
        end_user_keys: Sequence[str] = END_USER_KEY_PRESETS["default"],
    ) -> None:
        self.session_keys = tuple(session_keys)
        self.end_user_keys = tuple(end_user_keys)
        self._stamping = True

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        binding = current_binding()
        if binding is None or not self._stamping:
            return
        if binding.awaits_request_span and _is_request_span(span):
            # The request's own span, started inside the middleware (the OpenTelemetry
            # ASGI or WSGI middleware installed inside ours), maybe after spans of
            # other middlewares (an auth lookup): like one started before it, it
            # joins the session when a turn makes it its own, and a WebSocket
            # connection's span carries the session for all its turns.
            binding.awaits_request_span = False
            binding.request_span = span
            if binding.turns_are_roots:
                binding.request_span_is_turn = True
            if not (binding.request_span_is_turn or stamps_every_request()):
                return
        stamp_span(span, binding, self)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        # A provider we do not own outlives our shutdown(): stop stamping its spans.
        self._stamping = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def stamp_span(
    span: Span, binding: SessionBinding, keys: SessionSpanProcessor | None = None
) -> None:
    """Put the session attributes of ``binding`` on ``span``, under the keys of
    ``keys`` (default: those ``init()`` chose)."""
    if keys is None:
        keys = _stamper()
    session_id = binding.session_id
    for key in keys.session_keys:
        span.set_attribute(key, session_id)
    if binding.end_user_id is not None:
        for key in keys.end_user_keys:
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


class _Pipeline:
    """Everything one ``init()`` built, torn down together by ``shutdown()``."""

    def __init__(
        self,
        choice: ProviderChoice,
        processor: _export.BoundedBatchProcessor | None,
        stamper: SessionSpanProcessor,
        join_request_trace: bool,
        request_traces: str,
        shutdown_timeout_s: float,
        init_arguments: dict[str, Any],
    ) -> None:
        self.choice = choice
        self.provider = provider = choice.provider
        self.tracer = provider.get_tracer("neatlogs_web", __version__)
        self.processor = processor
        self.stamper = stamper
        self.join_request_trace = join_request_trace
        self.request_traces = request_traces
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
_exit_flush_armed = False


_default_stamper: Final = SessionSpanProcessor()


def _stamper() -> SessionSpanProcessor:
    pipeline = _pipeline
    return pipeline.stamper if pipeline is not None else _default_stamper


def session_keys() -> tuple[str, ...]:
    """The attribute keys sessions are stamped under (those ``init()`` chose)."""
    return _stamper().session_keys


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
    end_user_keys: str | Sequence[str] | None = None,
    join_request_trace: bool | None = None,
    request_traces: Literal["turns", "all"] = "turns",
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
    global _pipeline, _exit_flush_armed
    arguments = dict(locals())
    if auto_session and session_id is not None:
        raise ValueError("init() takes auto_session or session_id, not both: drop one")
    if session_id is not None and not is_valid_session_id(session_id):
        raise ValueError("init(session_id=...) must be 1-128 characters of [A-Za-z0-9._:@/+=-]")
    keys = _resolve_keys("session_keys", session_keys, SESSION_KEY_PRESETS)
    api_key = api_key if api_key is not None else os.environ.get("NEATLOGS_API_KEY") or None
    # Export asked for in so many words, as opposed to the local collector by default.
    export_configured = bool(endpoint or os.environ.get("NEATLOGS_ENDPOINT") or exporter)
    endpoint = endpoint or os.environ.get("NEATLOGS_ENDPOINT") or DEFAULT_ENDPOINT
    if backend is None:
        backend = "neatlogs" if api_key else "otlp"
    if backend not in ("neatlogs", "otlp"):
        raise ValueError(f"backend must be 'neatlogs' or 'otlp', not {backend!r}")
    if end_user_keys is None:
        # Like the session keys; never user.id toward the neatlogs backend.
        end_user_keys = session_keys if isinstance(session_keys, str) else "default"
        if backend == "neatlogs" and end_user_keys == "default":
            end_user_keys = "neatlogs"
    user_keys = _resolve_keys("end_user_keys", end_user_keys, END_USER_KEY_PRESETS)
    if join_request_trace is None:
        # The neatlogs backend drops transport spans: there the turn stays a root.
        join_request_trace = backend != "neatlogs"
    if request_traces not in ("turns", "all"):
        raise ValueError(f"request_traces must be 'turns' or 'all', not {request_traces!r}")
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
                # Phoenix files traces under this project.
                "openinference.project.name": workflow,
            }
        )
        choice = choose_provider(resource, sample_rate, global_provider=set_global_provider)
        provider = choice.provider
        existing = provider if choice.apps else None
        stamper = SessionSpanProcessor(keys, user_keys)
        target = None
        if existing is None or export_configured:
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
                stamper=stamper,
            )
            target.voice.started()
        elif existing is None:
            logger.info('neatlogs_web: exporter="none", spans are not sent anywhere')
        # One processor: the SDK calls every registered one for each span that starts
        # and ends, and the export processor stamps the session as a span starts.
        choice.add(processor if processor is not None else stamper)
        if existing is not None:
            logger.info(
                "neatlogs_web: using the tracer provider the app set up (%s): sessions "
                "are stamped on its spans, which go where it exports them%s",
                type(existing).__module__,
                "" if processor is None else ", and to neatlogs_web's exporter too",
            )
        elif set_global_provider:
            install_global_provider(provider)
        _pipeline = _Pipeline(
            choice,
            processor,
            stamper,
            join_request_trace,
            request_traces,
            shutdown_timeout_s,
            arguments,
        )
        set_default_session(
            new_session_id() if auto_session else session_id,
        )
        if not _exit_flush_armed:
            _flush_at_every_exit()
            _exit_flush_armed = True
    if flush_on_sigterm:
        _flush_on_sigterm()
    logger.debug("neatlogs_web initialised: workflow=%s backend=%s", workflow, backend)
    return provider


def _flush_at_every_exit() -> None:
    """Have ``shutdown()`` run however the process leaves, forks of it included.

    ``atexit`` runs only when the interpreter exits. A process ``multiprocessing``
    started (granian's WSGI workers, for one) leaves by ``os._exit`` once its main
    thread is done, and skips it. Both ways first run the threading module's exit
    hooks, which a forked child inherits: the one ``concurrent.futures`` stops its
    workers with. A thread waiting for the main thread would do as well, but
    deadlocks an app that joins every non-daemon thread before it returns.
    """
    atexit.register(shutdown)
    register_at_threading_exit = getattr(threading, "_register_atexit", None)
    if register_at_threading_exit is not None:
        with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
            register_at_threading_exit(shutdown)


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


def _resolve_keys(
    option: str, value: str | Sequence[str], presets: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    if isinstance(value, str):
        if value not in presets:
            raise ValueError(
                f"unknown {option} preset {value!r}: choose from "
                f"{', '.join(presets)} or pass a list of attribute keys"
            )
        return presets[value]
    keys = tuple(value)
    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise ValueError(f"{option} must name at least one non-empty attribute key")
    return keys


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
    # Spans that start or end from now on are the next init()'s, which may come
    # before this flush is over. Not provider.shutdown(): that one may use it.
    pipeline.stamper.shutdown()
    pipeline.choice.release(pipeline.processor or pipeline.stamper)
    if pipeline.processor is not None:
        pipeline.while_stopping(pipeline.processor.close)


def stats() -> dict[str, Any]:
    """Export counters and skipped session values, for an operator's endpoint."""
    pipeline = _pipeline
    processor = pipeline.processor if pipeline is not None else None
    export = processor.stats.snapshot() if processor is not None else {}
    return {
        "export": export,
        "rejected": rejection_counts(),
        "internal_errors": internal_error_counts(),
    }


def active_pipeline() -> _Pipeline | None:
    """What ``init()`` set up, or ``None`` before it (and after ``shutdown()``)."""
    return _pipeline


_warned_before_init = False


def tracer_before_init() -> otel_trace.Tracer:
    """The global tracer, for ``trace()`` before ``init()`` (the app may have set
    up OpenTelemetry itself)."""
    return otel_trace.get_tracer("neatlogs_web", __version__)


def warn_not_initialised(name: str) -> None:
    """Say once that ``trace()`` records nothing until ``init()`` runs."""
    global _warned_before_init
    if not _warned_before_init:
        _warned_before_init = True
        logger.warning(
            "neatlogs_web.trace(%r) recorded nothing: call neatlogs_web.init() at "
            "startup, before the first trace()",
            name,
        )


def stamps_every_request() -> bool:
    """Whether a framework's request span joins the session even when no turn ran in it."""
    pipeline = _pipeline
    return pipeline is not None and pipeline.request_traces == "all"
