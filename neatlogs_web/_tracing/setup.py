"""``init`` / ``trace`` / ``flush`` / ``shutdown`` over the OpenTelemetry SDK.

``init()`` builds a tracer provider (or joins the one the app set up) and
adds one processor of ours: it stamps the current session on every span at
start (ours and any instrumentation's) and, unless ``exporter="none"``, hands
ended spans to the batching export pipeline (``_tracing.stamping``). Each
top-level ``trace()`` block is a turn: one trace in the session's timeline,
which joins the framework's request trace where there is one
(``_tracing.trace``).
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
from collections.abc import Callable
from typing import Any, Unpack

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from neatlogs_web._export.exporter import PipelineExporter, build_target
from neatlogs_web._export.processor import BoundedBatchProcessor
from neatlogs_web._session.binding import set_default_session
from neatlogs_web._session.counters import internal_error_counts, rejection_counts
from neatlogs_web._session.ids import new_session_id
from neatlogs_web._tracing.init_options import Exporter, InitConfig, InitOptions
from neatlogs_web._tracing.providers import ProviderChoice, choose_provider, install_global_provider
from neatlogs_web._tracing.request_trace import end_held_turns
from neatlogs_web._tracing.stamping import (
    ExportingSessionProcessor,
    SessionSpanProcessor,
    active_stamper,
    use_stamper,
)
from neatlogs_web._version import __version__

__all__ = ["Pipeline", "flush", "init", "shutdown", "stats"]

logger = logging.getLogger("neatlogs_web")


class Pipeline:
    """Everything one ``init()`` built, torn down together by ``shutdown()``."""

    def __init__(
        self,
        choice: ProviderChoice,
        processor: BoundedBatchProcessor | None,
        stamper: SessionSpanProcessor,
        config: InitConfig,
    ) -> None:
        self.choice = choice
        self.provider = provider = choice.provider
        self.tracer = provider.get_tracer("neatlogs_web", __version__)
        self.processor = processor
        self.stamper = stamper
        self.config = config
        self.join_request_trace = config.joins_request_trace
        self.shutdown_timeout_s = config.shutdown_timeout_s
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


_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()
_exit_flush_armed = False


def session_keys() -> tuple[str, ...]:
    """The attribute keys sessions are stamped under (those ``init()`` chose)."""
    return active_stamper().session_keys


def init(
    api_key: str | None = None,
    endpoint: str | None = None,
    workflow_name: str | None = None,
    *,
    auto_session: bool = False,
    session_id: str | None = None,
    exporter: Exporter | None = None,
    **options: Unpack[InitOptions],
) -> TracerProvider:
    """Set up tracing once, at startup. Returns the OpenTelemetry provider.

    ``api_key`` / ``endpoint`` default to ``NEATLOGS_API_KEY`` /
    ``NEATLOGS_ENDPOINT``; with neither endpoint nor exporter, spans go to the
    local collector (``neatlogs-web serve``) at http://127.0.0.1:4318.
    ``auto_session`` or ``session_id`` set a process default session for work
    no request covers. See the README for every option.
    """
    global _pipeline, _exit_flush_armed
    config = InitConfig.from_options(
        {
            "api_key": api_key,
            "endpoint": endpoint,
            "workflow_name": workflow_name,
            "auto_session": auto_session,
            "session_id": session_id,
            "exporter": exporter,
            **options,
        }
    )
    with _pipeline_lock:
        if _pipeline is not None:
            if _pipeline.config == config:
                return _pipeline.provider
            raise RuntimeError(
                "init() was already called with other options: call "
                "neatlogs_web.shutdown() first to set up tracing again"
            )
        _pipeline = _build_pipeline(config)
        set_default_session(new_session_id() if config.auto_session else config.session_id)
        if not _exit_flush_armed:
            _flush_at_every_exit()
            _exit_flush_armed = True
    if config.flush_on_sigterm:
        _flush_on_sigterm()
    logger.debug(
        "neatlogs_web initialised: workflow=%s backend=%s", config.workflow, config.resolved_backend
    )
    return _pipeline.provider


def _build_pipeline(config: InitConfig) -> Pipeline:
    """The provider to use, the export pipeline if spans go anywhere, and the one
    processor of ours on the provider: it stamps each span and hands it to export."""
    workflow = config.workflow
    resource = Resource.create(
        {
            **(config.resource_attributes or {}),
            "service.name": workflow,
            "neatlogs.workflow_name": workflow,
            # Phoenix files traces under this project.
            "openinference.project.name": workflow,
        }
    )
    choice = choose_provider(
        resource, config.sample_rate, global_provider=config.set_global_provider
    )
    set_up_by_the_app = choice.set_up_by_the_app
    processor = None
    if not set_up_by_the_app or config.export_configured:
        processor = _export_processor(config)
        if processor is None and not set_up_by_the_app:
            logger.info('neatlogs_web: exporter="none", spans are not sent anywhere')
    stamper: SessionSpanProcessor
    keys, user_keys = config.session_key_list, config.end_user_key_list
    every_request = config.request_traces == "all"
    if processor is not None:
        stamper = ExportingSessionProcessor(
            keys, user_keys, stamps_every_request=every_request, export=processor
        )
    else:
        stamper = SessionSpanProcessor(keys, user_keys, stamps_every_request=every_request)
    choice.add(stamper)
    use_stamper(stamper)
    if set_up_by_the_app:
        logger.info(
            "neatlogs_web: using the tracer provider the app set up (%s): sessions "
            "are stamped on its spans, which go where it exports them%s",
            type(choice.provider).__module__,
            "" if processor is None else ", and to neatlogs_web's exporter too",
        )
    elif config.set_global_provider:
        install_global_provider(choice.provider)
    return Pipeline(choice, processor, stamper, config)


def _export_processor(config: InitConfig) -> BoundedBatchProcessor | None:
    """The batching export pipeline, or ``None`` for ``exporter="none"``."""
    target = build_target(
        config.exporter,
        endpoint=config.resolved_endpoint,
        api_key=config.resolved_api_key,
        timeout_s=config.export_timeout_s,
        backend=config.resolved_backend,
    )
    if target is None:
        return None
    to_neatlogs = config.resolved_backend == "neatlogs"
    processor = BoundedBatchProcessor(
        PipelineExporter(
            target,
            drop_transport_spans=to_neatlogs,
            completion_markers=to_neatlogs,
            session_keys=config.session_key_list,
        ),
        max_queue_size=config.max_queue_size,
        max_export_batch_size=config.max_export_batch_size,
        schedule_delay_ms=config.schedule_delay_ms,
        export_timeout_s=config.export_timeout_s,
        shutdown_timeout_s=config.shutdown_timeout_s,
    )
    target.voice.started()
    return processor


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
    end_held_turns()
    return pipeline.while_stopping(pipeline.processor.flush_before_exit)


def shutdown() -> None:
    """Flush and stop the pipeline within ``shutdown_timeout_s``; ``init()`` may follow."""
    global _pipeline
    with _pipeline_lock:
        pipeline, _pipeline = _pipeline, None
        set_default_session(None)
    if pipeline is None:
        return
    end_held_turns()  # this pipeline's, while it still exports them
    # Spans that start or end from now on are the next init()'s, which may come
    # before this flush is over. Not provider.shutdown(): that one may use it.
    pipeline.stamper.stop_stamping()
    use_stamper(None)
    pipeline.choice.release(pipeline.stamper)
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


def active_pipeline() -> Pipeline | None:
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
