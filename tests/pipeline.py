"""The test process's tracing pipeline: a clean global provider, and what a flush delivered."""

from __future__ import annotations

from opentelemetry import trace as otel_trace
from opentelemetry.util._once import Once

import neatlogs_web
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan


def reset_global_tracer_provider() -> None:
    """Let the next init() install its provider globally (test-only reset)."""
    otel_trace._TRACER_PROVIDER_SET_ONCE = Once()
    otel_trace._TRACER_PROVIDER = None


def spans_after_flush(receiver: OTLPReceiver, count: int) -> list[ReceivedSpan]:
    """Flush the pipeline, then wait until ``receiver`` holds at least ``count`` spans."""
    neatlogs_web.flush()
    return receiver.wait_for(lambda spans: len(spans) >= count)
