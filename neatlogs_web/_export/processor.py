"""The bounded batch processor: the SDK's ``BatchSpanProcessor`` behind our own bound.

Export must never slow, fail or hold up the app. Spans go through the SDK's
``BatchSpanProcessor`` (a queue drained by a background thread), behind our
own count of spans waiting for export (``neatlogs_web._export.stats``).
Nothing here waits without a deadline: the SDK's flush and shutdown run on a
helper thread that is abandoned when time runs out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
)
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
)

from neatlogs_web._export.exporter import PipelineExporter

#: The SDK's own defaults for ``OTEL_BSP_MAX_QUEUE_SIZE`` and ``..._EXPORT_BATCH_SIZE``.
DEFAULT_MAX_QUEUE_SIZE: Final = 2048
DEFAULT_MAX_EXPORT_BATCH_SIZE: Final = 512


def run_within(work: Callable[[], object], deadline: float) -> bool:
    """Run ``work`` on a daemon thread until ``deadline``; ``True`` if it finished.

    A thread that outlives the deadline is abandoned: being a daemon, it never
    keeps the process from exiting.
    """
    thread = threading.Thread(target=work, name="neatlogs-web-export", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no new threads this late in interpreter shutdown
        return False
    thread.join(max(0.0, deadline - time.monotonic()))
    return not thread.is_alive()


class BoundedBatchProcessor(SpanProcessor):
    """The SDK's ``BatchSpanProcessor`` behind our own bound, with honest flushes.

    ``None`` options fall through to the SDK, which reads the ``OTEL_BSP_*``
    environment variables; the queue bound is read the same way, so that a
    span is refused here (and counted) rather than silently by the SDK.
    """

    def __init__(
        self,
        exporter: PipelineExporter,
        *,
        max_queue_size: int | None = None,
        max_export_batch_size: int | None = None,
        schedule_delay_ms: float | None = None,
        export_timeout_s: float | None = None,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self.exporter = exporter
        self.stats = exporter.stats
        self.shutdown_timeout_s = shutdown_timeout_s
        queue = max_queue_size or _env_int(OTEL_BSP_MAX_QUEUE_SIZE, DEFAULT_MAX_QUEUE_SIZE)
        if max_export_batch_size is None:
            # Only a small queue given in code needs the SDK's batch size shortened to fit.
            batch = _env_int(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, DEFAULT_MAX_EXPORT_BATCH_SIZE)
            max_export_batch_size = queue if batch > queue else None
        self.max_queue_size = queue
        self._batch = BatchSpanProcessor(
            exporter,
            max_queue_size=queue,
            schedule_delay_millis=schedule_delay_ms,
            max_export_batch_size=max_export_batch_size,
            export_timeout_millis=None if export_timeout_s is None else export_timeout_s * 1000,
        )
        self._flusher: threading.Thread | None = None
        self._flusher_lock = threading.Lock()
        self._flush_wanted = False
        #: Closing: spans that end from now on belong to whatever pipeline comes next.
        self._closed = False
        #: Closed and done: nothing more is counted, queued or waited for.
        self._stopped = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._closed or not span.context.trace_flags.sampled:
            # Closed: left on a provider after shutdown() (the next init() may already
            # export through it), spans are not ours. Unsampled: the batch processor
            # skips them too.
            return
        if self.stats.admit(self.max_queue_size):
            self._batch.on_end(span)
        else:
            self.exporter.voice.dropped(1, self.max_queue_size)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued; ``True`` only if all of it was accepted in time."""
        return self.flush_until(time.monotonic() + timeout_millis / 1000)

    def flush_until(self, deadline: float) -> bool:
        if self._stopped:  # nothing more will settle: say so without waiting
            return self.stats.pending() == 0
        mark = self.stats.mark()
        if self.stats.pending() == 0:
            return True
        self._start_flushing()
        return self.stats.wait_settled(mark, deadline)

    def _start_flushing(self) -> None:
        """Have the SDK export its queue now, on a helper thread, one at a time.

        The SDK's ``force_flush`` ignores its timeout, so one helper serves every
        request: a request made while it runs has it flush once more.
        """
        with self._flusher_lock:
            self._flush_wanted = True
            if self._flusher is not None and self._flusher.is_alive():
                return
            self._flusher = threading.Thread(
                target=self._flush_while_wanted, name="neatlogs-web-flush", daemon=True
            )
            try:
                self._flusher.start()
            except RuntimeError:  # no new threads this late in interpreter shutdown
                self._flusher = None

    def _flush_while_wanted(self) -> None:
        """The helper: flush until no request came in since its last flush began.

        A running ``force_flush`` may already have looked at the queue for the
        last time, so a request is never left to it; the helper also stops
        under the lock requests take, so none falls between it and its end.
        """
        while True:
            with self._flusher_lock:
                if not self._flush_wanted:
                    self._flusher = None
                    return
                self._flush_wanted = False
            self._batch.force_flush()

    def flush_before_exit(self, deadline: float) -> bool:
        """Flush as the app stops (lifespan shutdown), requests bounded by ``deadline``.

        The process may end right after (uvicorn re-raises SIGTERM): what was
        lost is said here, not left to ``close()``.
        """
        watch = self.exporter.watch
        watch.deadline = deadline
        try:
            return self._reporting_loss(lambda: self.flush_until(deadline))
        finally:
            watch.deadline = None

    def close(self, deadline: float) -> bool:
        """Flush and stop by ``deadline``; ``True`` if every queued span was accepted."""
        if self._closed:
            return True
        self._closed = True
        watch = self.exporter.watch
        watch.deadline = deadline

        def flush_and_stop() -> bool:
            flushed = self.flush_until(deadline)
            run_within(self._batch.shutdown, deadline)
            watch.stop()
            self._stopped = True
            return flushed

        return self._reporting_loss(flush_and_stop)

    def _reporting_loss(self, stopping: Callable[[], bool]) -> bool:
        """Run a step of stopping, then say in one line all it lost.

        The last word, whatever the once-a-minute limit held back.
        """
        failed_before = self.stats.spans_failed
        done = stopping()
        lost = self.stats.spans_failed - failed_before + self.stats.pending()
        if lost:
            trouble = self.exporter.watch.last_trouble
            self.exporter.voice.lost_at_exit(lost, self.shutdown_timeout_s, trouble)
        return done

    def shutdown(self) -> None:
        """The provider's shutdown, bounded like ours (``neatlogs_web.shutdown`` comes first)."""
        self.close(time.monotonic() + self.shutdown_timeout_s)


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default
