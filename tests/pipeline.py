"""The test process's tracing pipeline: a clean global provider, and what a flush delivered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.util._once import Once

import neatlogs_web
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan


def reset_global_tracer_provider() -> None:
    """Let the next init() install its provider globally (test-only reset)."""
    otel_trace._TRACER_PROVIDER_SET_ONCE = Once()
    otel_trace._TRACER_PROVIDER = None


@contextmanager
def own_pipeline(**init_options: Any) -> Iterator[None]:
    """``neatlogs_web.init(**init_options)`` for the block, made global, with
    whatever ran before shut down first and after it shut down again."""
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    neatlogs_web.init(flush_on_sigterm=False, **init_options)
    try:
        yield
    finally:
        neatlogs_web.shutdown()
        reset_global_tracer_provider()


def spans_after_flush(receiver: OTLPReceiver, count: int) -> list[ReceivedSpan]:
    """Flush the pipeline, then wait until ``receiver`` holds at least ``count`` spans."""
    neatlogs_web.flush()
    return receiver.wait_for(lambda spans: len(spans) >= count)


def judgments_attempted(count: int) -> dict[str, Any]:
    """The export's figures once ``count`` judgments were sent to a backend's own API
    or failed: they go after their batch's spans are counted, so after ``flush()``."""
    deadline = time.monotonic() + 10
    while True:
        export: dict[str, Any] = neatlogs_web.stats()["export"]
        attempted = export["native_feedback_sent"] + export["native_feedback_failed"]
        if attempted >= count or time.monotonic() > deadline:
            return export
        time.sleep(0.02)
