"""Which OpenTelemetry provider ``init()`` uses: the app's, an earlier ``init()``'s, or a new one.

OpenTelemetry sets the global tracer provider once per process. The first
``init()`` makes one and sets it; after ``shutdown()`` it stays global, and
the instrumentations that took their tracers from it (FastAPI's own
telemetry, httpx, the OpenTelemetry middlewares) keep using it. A later
``init()`` that made a provider of its own would export ``trace()`` spans
but lose theirs, and a turn would hang under a request span never sent. So
a later ``init()`` exports through the provider still global, when it was
made with the same resource and sampling. The app's own provider is reused
the same way. The first ``init()`` puts its processor on a provider
directly; later ones go through a relay added once, which points at each
new pipeline in turn: a process that calls ``init()`` once (a server) pays
nothing for it, and one that calls it often (a test suite) adds no more.
"""

from __future__ import annotations

import logging
import weakref

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from neatlogs_web._tracing.sampling import session_sampler

__all__ = ["ProviderChoice", "choose_provider", "install_global_provider"]

logger = logging.getLogger("neatlogs_web")


class _Relay(SpanProcessor):
    """Forwards to the processor of the pipeline in use; nothing between pipelines."""

    def __init__(self) -> None:
        self.target: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        target = self.target
        if target is not None:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target
        if target is not None:
            target.on_end(span)

    def shutdown(self) -> None:
        # The app shut its provider down: as if our processor were on it directly.
        target = self.target
        if target is not None:
            target.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.target
        return target.force_flush(timeout_millis) if target is not None else True


class _Slot:
    """A provider ``init()`` has used: what it was made with, and how to reach it again."""

    def __init__(self, sample_rate: float | None) -> None:
        #: ``None`` for the app's provider, which ``init()`` did not make.
        self.sample_rate = sample_rate
        #: Whether a processor of ours went on it directly (the first ``init()``'s).
        self.holds_a_processor = False
        self.relay: _Relay | None = None


_slots: weakref.WeakKeyDictionary[TracerProvider, _Slot] = weakref.WeakKeyDictionary()


class ProviderChoice:
    """The provider ``init()`` uses, and how to put its processor on it and take it off."""

    def __init__(self, provider: TracerProvider, slot: _Slot) -> None:
        self.provider = provider
        self._slot = slot
        #: The app set it up (``phoenix.otel.register()``, Langfuse, Logfire).
        self.set_up_by_the_app = slot.sample_rate is None

    def add(self, processor: SpanProcessor) -> None:
        """Put ``processor`` on the provider: directly the first time, then through
        one relay, so the provider holds two of ours however often ``init()`` runs."""
        slot = self._slot
        if not slot.holds_a_processor:
            slot.holds_a_processor = True
            self.provider.add_span_processor(processor)
            return
        if slot.relay is None:
            slot.relay = _Relay()
            self.provider.add_span_processor(slot.relay)
        slot.relay.target = processor

    def release(self, processor: SpanProcessor) -> None:
        """Stop sending spans to ``processor``; a later pipeline's stays connected."""
        relay = self._slot.relay
        if relay is not None and relay.target is processor:
            relay.target = None


def choose_provider(
    resource: Resource, sample_rate: float, *, global_provider: bool
) -> ProviderChoice:
    """The app's global SDK provider (joined, so one trace never splits between two
    pipelines), else an earlier ``init()``'s still global one that fits, else a new one."""
    current = otel_trace.get_tracer_provider() if global_provider else None
    if isinstance(current, TracerProvider):
        slot = _slots.get(current)
        if slot is None:
            slot = _slots[current] = _Slot(None)
        if slot.sample_rate is None or (
            current.resource == resource and slot.sample_rate == sample_rate
        ):
            return ProviderChoice(current, slot)
        logger.warning(
            "neatlogs_web: init() after shutdown() with another workflow_name, "
            "resource_attributes or sample_rate makes a new tracer provider, but "
            "OpenTelemetry keeps the first one global: spans of instrumentations "
            "(FastAPI's, httpx) stay there and are not exported. Keep these options, "
            "or restart the process to change them"
        )
    provider = TracerProvider(
        resource=resource,
        sampler=session_sampler(sample_rate) if sample_rate < 1 else None,
        # Its atexit hook would wait on the exporter without a deadline: ours has one.
        shutdown_on_exit=False,
    )
    slot = _slots[provider] = _Slot(sample_rate)
    return ProviderChoice(provider, slot)


def install_global_provider(provider: TracerProvider) -> None:
    """Become the global provider if none is set, so instrumentations join in."""
    current = otel_trace.get_tracer_provider()
    if isinstance(current, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider):
        otel_trace.set_tracer_provider(provider)
    elif not isinstance(current, TracerProvider):
        logger.info(
            "neatlogs_web: a global tracer provider that is not OpenTelemetry's SDK is "
            "set; spans of other instrumentations stay there"
        )
