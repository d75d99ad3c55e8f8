"""The export pipeline: which exporter, what is filtered, and what is counted.

Export must never slow or fail a request. Spans go through the SDK's
``BatchSpanProcessor`` (a bounded queue drained by a background thread); this
module adds what the neatlogs backend expects on top of plain OTLP (no HTTP
transport spans, a completion marker after each exported root) and counters
an operator can read with ``neatlogs_web.stats()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence, Sized
from typing import Final

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

logger = logging.getLogger("neatlogs_web")

COMPLETE_MARKER_NAME: Final = "neatlogs.trace.complete"
_HTTP_ATTRIBUTE_KEYS: Final = (
    "http.request.method",
    "http.method",
    "http.route",
    "url.full",
    "http.url",
)
# Spans that frameworks emit about the request itself, not about the app's work.
_TRANSPORT_SCOPES: Final = ("fastapi", "opentelemetry.instrumentation.")
_DROP_LOG_INTERVAL_S: Final = 10.0


_DROPPED_MESSAGE: Final = (
    "neatlogs_web dropped %d spans because the export queue was full "
    "(%d dropped in total): the receiver is down or too slow, or raise max_queue_size"
)
_FAILED_MESSAGE: Final = (
    "neatlogs_web could not export %d spans (%d lost in total): the receiver "
    "answered with an error or did not answer in time"
)


class _LossTally:
    """Spans lost one way, and when their count was last reported.

    A receiver that is down loses spans continuously: reporting at most every
    10 s keeps the operator informed without flooding the log.
    """

    __slots__ = ("_last_report", "_since_report", "total")

    def __init__(self) -> None:
        self.total = 0
        self._since_report = 0
        self._last_report = 0.0

    def add(self, count: int, now: float) -> tuple[int, int] | None:
        """Count ``count`` more; ``(recent, total)`` when a report is due."""
        self.total += count
        self._since_report += count
        if now - self._last_report < _DROP_LOG_INTERVAL_S:
            return None
        self._last_report = now
        recent, self._since_report = self._since_report, 0
        return recent, self.total


class ExportStats:
    """Counters of what happened to ended spans; read by ``neatlogs_web.stats()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans_queued = 0
        self.spans_exported = 0
        self.spans_filtered = 0
        self.markers_sent = 0
        self.export_failures = 0
        self._dropped = _LossTally()
        self._failed = _LossTally()

    def queued(self) -> None:
        """Count one span entering the export queue (once per span: kept cheap)."""
        with self._lock:
            self.spans_queued += 1

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def dropped(self) -> None:
        """Count a span the full queue had to drop."""
        self._lose(self._dropped, 1, _DROPPED_MESSAGE)

    def failed(self, count: int) -> None:
        """Count spans an export lost (error status, timeout).

        The exporter logs each failure, but not how many spans it cost.
        """
        with self._lock:
            self.export_failures += 1
        self._lose(self._failed, count, _FAILED_MESSAGE)

    def _lose(self, tally: _LossTally, count: int, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            report = tally.add(count, now)
        if report is not None:
            logger.warning(message, *report)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "spans_queued": self.spans_queued,
                "spans_exported": self.spans_exported,
                "spans_failed": self._failed.total,
                "spans_dropped": self._dropped.total,
                "spans_filtered": self.spans_filtered,
                "markers_sent": self.markers_sent,
                "export_failures": self.export_failures,
            }


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting what enters and what a full queue drops.

    ``stamp``, when given, runs as this processor's ``on_start`` (the SDK's is a
    no-op): the provider then calls one processor per span event, not two.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        stats: ExportStats,
        *,
        stamp: SpanProcessor | None = None,
        **options: float,
    ) -> None:
        super().__init__(exporter, **options)  # type: ignore[arg-type]
        if stamp is not None:
            self.on_start = stamp.on_start  # type: ignore[method-assign]
        self._stats = stats
        self._max_queue_size = int(options.get("max_queue_size") or 2048)
        # The SDK's deque lives as long as the processor: look it up once, not per span.
        self._queue: Sized | None = getattr(getattr(self, "_batch_processor", None), "_queue", None)

    def on_end(self, span: ReadableSpan) -> None:
        # The SDK drops the oldest span silently (bar one log line) when its
        # deque is full; look before adding so the operator can count drops.
        queue = self._queue
        if queue is not None and len(queue) >= self._max_queue_size:
            self._stats.dropped()
        else:
            self._stats.queued()
        BatchSpanProcessor.on_end(self, span)


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


class PipelineExporter(SpanExporter):
    """Wraps the real exporter: filters, counts, and sends completion markers."""

    def __init__(
        self,
        inner: SpanExporter,
        stats: ExportStats,
        *,
        drop_transport_spans: bool,
        completion_markers: bool,
        session_keys: Sequence[str],
    ) -> None:
        self.inner = inner
        self._stats = stats
        self._drop_transport = drop_transport_spans
        self._markers = completion_markers
        self._session_keys = tuple(session_keys)
        self.marker_tracer: otel_trace.Tracer | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        batch = spans
        if self._drop_transport:
            batch = [span for span in spans if not is_transport_span(span)]
            if len(batch) != len(spans):
                self._stats.add(spans_filtered=len(spans) - len(batch))
        if not batch:
            return SpanExportResult.SUCCESS
        try:
            result = self.inner.export(batch)
        except Exception:
            logger.exception("neatlogs_web span exporter raised; %d spans lost", len(batch))
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._stats.add(spans_exported=len(batch))
            if self._markers:
                self._send_markers(batch)
        else:
            self._stats.failed(len(batch))
        return result

    def _send_markers(self, batch: Sequence[ReadableSpan]) -> None:
        tracer = self.marker_tracer
        if tracer is None:
            return
        sent = 0
        for span in batch:
            if span.parent is not None or span.name == COMPLETE_MARKER_NAME:
                continue
            context = span.get_span_context()
            if context is None:
                continue
            parent = SpanContext(
                context.trace_id, context.span_id, False, TraceFlags(TraceFlags.SAMPLED)
            )
            marker = tracer.start_span(
                COMPLETE_MARKER_NAME,
                context=otel_trace.set_span_in_context(NonRecordingSpan(parent)),
            )
            root_attributes = span.attributes or {}
            marker.set_attributes(
                {key: root_attributes[key] for key in self._session_keys if key in root_attributes}
            )
            marker.set_attribute("neatlogs.trace.complete", True)
            marker.set_attribute("neatlogs.internal", True)
            marker.end()
            sent += 1
        if sent:
            self._stats.add(markers_sent=sent)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def build_exporter(
    exporter: SpanExporter | str | None,
    *,
    endpoint: str,
    api_key: str | None,
    timeout_s: float,
) -> SpanExporter | None:
    """The exporter ``init()`` asked for; ``None`` means export nothing."""
    if isinstance(exporter, SpanExporter):
        return exporter
    if exporter == "none":
        return None
    if exporter == "console":
        return ConsoleSpanExporter()
    if exporter not in (None, "otlp"):
        raise ValueError(
            f"exporter must be 'otlp', 'console', 'none' or a SpanExporter, not {exporter!r}"
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=traces_url(endpoint),
        headers={"x-api-key": api_key} if api_key else None,
        compression=Compression.Gzip,
        timeout=timeout_s,
    )


def traces_url(endpoint: str) -> str:
    """``{endpoint}/v1/traces``, accepting an endpoint that already ends in it."""
    base = endpoint.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(
            f"endpoint {endpoint!r} must be an http:// or https:// URL, e.g. http://127.0.0.1:4318"
        )
    return base if base.endswith("/v1/traces") else base + "/v1/traces"
