"""``init()`` may follow ``shutdown()``: each pipeline exports its own spans, whatever
provider OpenTelemetry keeps global, and a late ``shutdown()`` never cuts off the next.

Here the global provider is not reset between cycles, as in an app or a user's
test suite (OpenTelemetry sets it once per process).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import neatlogs_web

pytestmark = pytest.mark.usefixtures("fresh_global_provider")


class SlowExporter(SpanExporter):
    """Holds each export until the test releases it: a shutdown() still flushing when
    the next init() runs."""

    def __init__(self) -> None:
        self.exporting = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exporting.set()
        self.release.wait(10)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_a_shutdown_still_flushing_never_cuts_off_the_next_pipeline() -> None:
    neatlogs_web.init(exporter=InMemorySpanExporter(), flush_on_sigterm=False)
    neatlogs_web.shutdown()
    slow = SlowExporter()
    neatlogs_web.init(exporter=slow, flush_on_sigterm=False)
    with neatlogs_web.trace("slow to export"):
        pass
    stopping = threading.Thread(target=neatlogs_web.shutdown)
    stopping.start()
    assert slow.exporting.wait(10)  # the shutdown is flushing
    third = InMemorySpanExporter()
    neatlogs_web.init(exporter=third, flush_on_sigterm=False)
    slow.release.set()
    stopping.join(10)
    for index in range(5):
        with neatlogs_web.trace(f"third {index}"):
            pass
    assert neatlogs_web.flush(5)
    assert sorted(s.name for s in third.get_finished_spans()) == [f"third {i}" for i in range(5)]


def test_each_cycle_exports_its_own_spans_on_the_apps_provider() -> None:
    app_provider = TracerProvider()
    otel_trace.set_tracer_provider(app_provider)
    app_tracer = app_provider.get_tracer("app")
    for cycle in range(5):
        exporter = InMemorySpanExporter()
        neatlogs_web.init(
            exporter=exporter, session_keys=[f"cycle{cycle}.session"], flush_on_sigterm=False
        )
        with neatlogs_web.session(f"conv-{cycle}"), app_tracer.start_as_current_span("app"):
            pass
        assert neatlogs_web.flush(5)
        neatlogs_web.shutdown()
        (span,) = exporter.get_finished_spans()
        assert dict(span.attributes or {}) == {f"cycle{cycle}.session": f"conv-{cycle}"}


def test_the_apps_provider_shutdown_flushes_ours_in_every_cycle() -> None:
    for cycle in range(3):
        exporter = InMemorySpanExporter()
        provider = neatlogs_web.init(
            exporter=exporter, schedule_delay_ms=60_000, flush_on_sigterm=False
        )
        with neatlogs_web.trace(f"cycle {cycle}"):
            pass
        provider.shutdown()  # what an app's own teardown does
        assert [s.name for s in exporter.get_finished_spans()] == [f"cycle {cycle}"]
        neatlogs_web.shutdown()


@pytest.mark.parametrize("earlier_cycles", [0, 1])
def test_spans_of_the_next_pipeline_never_reach_one_still_flushing(earlier_cycles: int) -> None:
    """Whether the flushing pipeline's processor sits on the provider itself (the
    first init()) or behind the relay, the next init()'s spans are the next one's."""
    for _ in range(earlier_cycles):
        neatlogs_web.init(exporter=InMemorySpanExporter(), flush_on_sigterm=False)
        neatlogs_web.shutdown()
    slow = RecordingSlowExporter()
    neatlogs_web.init(exporter=slow, session_keys=["old.session"], flush_on_sigterm=False)
    with neatlogs_web.session("conv"), neatlogs_web.trace("old"):
        pass
    stopping = threading.Thread(target=neatlogs_web.shutdown)
    stopping.start()
    assert slow.exporting.wait(10)  # the shutdown is flushing
    new = InMemorySpanExporter()
    neatlogs_web.init(exporter=new, session_keys=["new.session"], flush_on_sigterm=False)
    with neatlogs_web.session("conv"), neatlogs_web.trace("new"):
        pass
    slow.release.set()
    stopping.join(10)
    assert neatlogs_web.flush(5)
    assert slow.names == ["old"]
    (span,) = new.get_finished_spans()
    assert dict(span.attributes or {}) == {"new.session": "conv"}


class RecordingSlowExporter(SlowExporter):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.names += [span.name for span in spans]
        return super().export(spans)
