"""An exporter that drops every batch, and a provider that batches into it.

Spans still go through the real ``BatchSpanProcessor`` and its background
thread, so the figures include what a production pipeline costs in the
request path; only the network send is left out, for both sides alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

#: neatlogs_web.init()'s batching defaults, used for the raw SDK side too.
SCHEDULE_DELAY_MS = 1000
MAX_QUEUE_SIZE = 2048
MAX_EXPORT_BATCH_SIZE = 512


class DiscardingExporter(SpanExporter):
    """Counts and forgets: the cheapest exporter a batch processor can feed."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def batch_provider(exporter: SpanExporter) -> TracerProvider:
    """A plain SDK provider with the same batching settings as ``init()``."""
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=MAX_QUEUE_SIZE,
            max_export_batch_size=MAX_EXPORT_BATCH_SIZE,
            schedule_delay_millis=SCHEDULE_DELAY_MS,
        )
    )
    return provider
