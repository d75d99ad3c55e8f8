"""The export pipeline: which exporter, what is filtered, counted, and waited for.

Export must never slow, fail or hold up the app. Spans go through the SDK's
``BatchSpanProcessor`` (a queue drained by a background thread), behind our
own count of spans waiting for export: a span that would overflow the queue
is refused and counted here, so drops are exact without reading the SDK's
internals. The exporter wrapper filters what the neatlogs backend rejects,
adds a completion marker after each root (built as a plain ``ReadableSpan``,
sent in the root's own request), and counts what settled, so ``flush`` can
tell the truth. Nothing here waits without a deadline: the SDK's flush and
shutdown run on a helper thread that is abandoned when time runs out.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
)
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from neatlogs_web._export.health import (
    UNKNOWN,
    ExportVoice,
    ExportWatch,
    quiet_while_exporting,
    trouble_of,
)

COMPLETE_MARKER_NAME: Final = "neatlogs.trace.complete"
#: The SDK's own defaults for ``OTEL_BSP_MAX_QUEUE_SIZE`` and ``..._EXPORT_BATCH_SIZE``.
DEFAULT_MAX_QUEUE_SIZE: Final = 2048
DEFAULT_MAX_EXPORT_BATCH_SIZE: Final = 512
LOCAL_ENDPOINT: Final = "http://127.0.0.1:4318"
#: The OTLP exporter's default timeout, and the variables it reads first.
DEFAULT_EXPORT_TIMEOUT_S: Final = 10.0
_TIMEOUT_VARIABLES: Final = (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT)
_HTTP_ATTRIBUTE_KEYS: Final = (
    "http.request.method",
    "http.method",
    "http.route",
    "url.full",
    "http.url",
)
# Spans that frameworks emit about the request itself, not about the app's work.
_TRANSPORT_SCOPES: Final = ("fastapi", "opentelemetry.instrumentation.")
_MARKER_SCOPE: Final = InstrumentationScope("neatlogs.internal")
_ids: Final = RandomIdGenerator()


class ExportStats:
    """Counts of what happened to ended spans; read by ``neatlogs_web.stats()``.

    A span is *queued* when admitted, *handed* when the batch processor gives
    it to the exporter, and *settled* once that export is over (exported,
    failed or filtered). Queued minus handed is what waits in the SDK's
    queue; queued minus settled is what a flush still waits for.
    """

    def __init__(self) -> None:
        # Reentrant: the garbage collector can run inside any block that holds it
        # and finalize an abandoned stream whose finally: ends a span, which comes
        # back here on the same thread (a plain lock would wait for itself forever).
        self._lock = threading.RLock()
        self._settled_or_failed = threading.Condition(self._lock)
        self.spans_queued = 0
        self.spans_dropped = 0
        self._handed = 0
        self._settled = 0
        self.spans_exported = 0
        self.spans_failed = 0
        self.spans_filtered = 0
        self.markers_sent = 0
        self.export_failures = 0
        if hasattr(os, "register_at_fork"):
            forget = weakref.WeakMethod(self._forget_queued)
            os.register_at_fork(after_in_child=lambda: (method := forget()) and method())

    def admit(self, limit: int) -> bool:
        """Count one ended span in, unless ``limit`` are already waiting (a drop)."""
        # The lock itself, not the condition: once per span, and nothing to notify.
        with self._lock:
            if self.spans_queued - self._handed >= limit:
                self.spans_dropped += 1
                return False
            self.spans_queued += 1
            return True

    def handed(self, count: int) -> None:
        with self._settled_or_failed:
            self._handed += count

    def settled(
        self, *, exported: int = 0, failed: int = 0, filtered: int = 0, markers: int = 0
    ) -> None:
        with self._settled_or_failed:
            self._settled += exported + failed + filtered
            self.spans_exported += exported
            self.spans_filtered += filtered
            self.markers_sent += markers
            if failed:
                self.spans_failed += failed
                self.export_failures += 1
            self._settled_or_failed.notify_all()

    def mark(self) -> tuple[int, int]:
        """What a flush started now waits for: ``(spans queued, failures so far)``."""
        with self._settled_or_failed:
            return self.spans_queued, self.export_failures

    def pending(self) -> int:
        with self._settled_or_failed:
            return self.spans_queued - self._settled

    def wait_settled(self, mark: tuple[int, int], deadline: float) -> bool:
        """Wait until every span queued at ``mark`` settled; ``True`` if all were accepted."""
        queued, failures = mark
        with self._settled_or_failed:
            self._settled_or_failed.wait_for(
                lambda: self._settled >= queued or self.export_failures != failures,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            return self._settled >= queued and self.export_failures == failures

    def _forget_queued(self) -> None:
        # A forked child starts with an empty SDK queue: what the parent had
        # queued is the parent's to export.
        with self._settled_or_failed:
            self._handed = self._settled = self.spans_queued

    def snapshot(self) -> dict[str, int]:
        with self._settled_or_failed:
            return {
                "spans_queued": self.spans_queued,
                "spans_pending": self.spans_queued - self._settled,
                "spans_exported": self.spans_exported,
                "spans_failed": self.spans_failed,
                "spans_dropped": self.spans_dropped,
                "spans_filtered": self.spans_filtered,
                "markers_sent": self.markers_sent,
                "export_failures": self.export_failures,
            }


@dataclass(frozen=True)
class ExportTarget:
    """The exporter ``init()`` asked for, and how to talk about it."""

    exporter: SpanExporter
    voice: ExportVoice
    watch: ExportWatch


def build_target(
    exporter: SpanExporter | str | None,
    *,
    endpoint: str,
    api_key: str | None,
    timeout_s: float | None,
) -> ExportTarget | None:
    """The exporter ``init()`` asked for; ``None`` means export nothing."""
    if isinstance(exporter, SpanExporter):
        name = type(exporter).__name__
        fix = f'Check {name}, or pass exporter="none" to init() to stop exporting.'
        return ExportTarget(exporter, ExportVoice(f"the exporter {name}", fix), ExportWatch())
    if exporter == "none":
        return None
    if exporter == "console":
        return ExportTarget(ConsoleSpanExporter(), ExportVoice("the console", ""), ExportWatch())
    if exporter not in (None, "otlp"):
        raise ValueError(
            f"exporter must be 'otlp', 'console', 'none' or a SpanExporter, not {exporter!r}"
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = traces_url(endpoint)
    # The exporter and our deadline on it read the same timeout.
    watch = ExportWatch(export_timeout(timeout_s))
    quiet_while_exporting(OTLPSpanExporter.__module__)
    otlp = OTLPSpanExporter(
        endpoint=url,
        headers={"x-api-key": api_key} if api_key else None,
        compression=Compression.Gzip,
        timeout=watch.export_timeout_s,
        session=watch.session(),
    )
    return ExportTarget(otlp, ExportVoice(f"{url} (OTLP/HTTP)", _fix(url)), watch)


def export_timeout(timeout_s: float | None) -> float:
    """``export_timeout_s``, else the OTLP exporter's variables, else its 10 s."""
    option, value = "export_timeout_s", timeout_s
    if value is None:
        option = next((name for name in _TIMEOUT_VARIABLES if os.environ.get(name)), "")
        if not option:
            return DEFAULT_EXPORT_TIMEOUT_S
        text = os.environ[option]
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{option} must be a number of seconds, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{option} must be more than 0 seconds, not {value!r}")
    return value


def _fix(url: str) -> str:
    off = 'or pass exporter="none" to init() to stop exporting.'
    if url == traces_url(LOCAL_ENDPOINT):
        return (
            "Start the local collector with `neatlogs-web serve`, set NEATLOGS_ENDPOINT "
            f"to your receiver, {off}"
        )
    return f"Check that the receiver is up, set NEATLOGS_ENDPOINT to the right one, {off}"


def traces_url(endpoint: str) -> str:
    """``{endpoint}/v1/traces``, accepting an endpoint that already ends in it."""
    base = endpoint.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(
            f"endpoint {endpoint!r} must be an http:// or https:// URL, e.g. http://127.0.0.1:4318"
        )
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def is_transport_span(span: ReadableSpan) -> bool:
    """HTTP server/client spans and framework request spans, which the neatlogs
    backend rejects: they describe the transport, not the app's work."""
    scope = span.instrumentation_scope
    if scope is not None and scope.name.startswith(_TRANSPORT_SCOPES):
        return True
    if span.kind in (SpanKind.SERVER, SpanKind.CLIENT):
        attributes = span.attributes or {}
        return any(key in attributes for key in _HTTP_ATTRIBUTE_KEYS)
    return False


def completion_marker(root: ReadableSpan, session_keys: Sequence[str]) -> ReadableSpan:
    """The neatlogs backend's "this trace is finished" span, as a child of ``root``.

    Built directly, not started on a tracer: the export thread never
    re-enters the provider, and the marker carries the root's session keys.
    """
    context = root.get_span_context()
    assert context is not None  # every SDK span has one
    attributes = root.attributes or {}
    return ReadableSpan(
        name=COMPLETE_MARKER_NAME,
        context=SpanContext(
            context.trace_id, _ids.generate_span_id(), False, TraceFlags(TraceFlags.SAMPLED)
        ),
        parent=context,
        resource=root.resource,
        attributes={
            **{key: attributes[key] for key in session_keys if key in attributes},
            "neatlogs.trace.complete": True,
            "neatlogs.internal": True,
        },
        kind=SpanKind.INTERNAL,
        start_time=root.end_time,
        end_time=root.end_time,
        instrumentation_scope=_MARKER_SCOPE,
    )


class PipelineExporter(SpanExporter):
    """Wraps the real exporter: filters, adds markers, counts, and reports trouble."""

    def __init__(
        self,
        target: ExportTarget,
        *,
        drop_transport_spans: bool,
        completion_markers: bool,
        session_keys: Sequence[str],
    ) -> None:
        self.inner = target.exporter
        self.voice = target.voice
        self.watch = target.watch
        self.stats = ExportStats()
        self._drop_transport = drop_transport_spans
        self._markers = completion_markers
        self._session_keys = tuple(session_keys)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        stats = self.stats
        stats.handed(len(spans))
        batch = spans
        if self._drop_transport:
            batch = [span for span in spans if not is_transport_span(span)]
        filtered = len(spans) - len(batch)
        if self.watch.stopped:
            # Shut down, and the deadline passed: what the SDK still hands over is
            # lost, already reported once, and must not keep a dying process busy.
            stats.settled(failed=len(batch), filtered=filtered)
            return SpanExportResult.FAILURE
        if not batch:
            stats.settled(filtered=filtered)
            return SpanExportResult.SUCCESS
        markers = [
            completion_marker(span, self._session_keys)
            for span in (batch if self._markers else ())
            if span.parent is None
        ]
        with self.watch.exporting() as outcome:
            try:
                result = self.inner.export([*batch, *markers] if markers else batch)
            except Exception as error:
                outcome.trouble = outcome.trouble or trouble_of(error)
                result = SpanExportResult.FAILURE
        # Speak before settling: a flush waiting on these spans returns after the line.
        if result is SpanExportResult.SUCCESS:
            self.voice.succeeded()
            if outcome.trouble is not None:  # went through, yet the answer was not right
                self.voice.answered_badly(outcome.trouble)
            stats.settled(exported=len(batch), filtered=filtered, markers=len(markers))
        else:
            if not self.watch.stopped:  # after shutdown, unsent_at_exit said it all
                self.voice.failed(outcome.trouble or UNKNOWN, len(batch))
            stats.settled(failed=len(batch), filtered=filtered)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


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
