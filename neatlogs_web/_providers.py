"""Which OpenTelemetry provider ``init()`` uses: the app's, an earlier ``init()``'s, or a new one.

OpenTelemetry sets the global tracer provider once per process. The first
``init()`` makes one and sets it; after ``shutdown()`` it stays global, and
the instrumentations that took their tracers from it (FastAPI's own
telemetry, httpx, the OpenTelemetry middlewares) keep using it. A later
``init()`` that made a provider of its own would export ``trace()`` spans
but lose theirs, and a turn would hang under a request span never sent. So
a later ``init()`` exports through the provider still global, when it was
made with the same resource and sampling: a relay added to it once points
at each new pipeline in turn, and a process that calls ``init()`` once (a
server) pays nothing for it.
"""

from __future__ import annotations

import logging
import weakref

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from neatlogs_web.sampling import session_sampler

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
        self.target = None  # each pipeline closes its own processor

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.target
        return target.force_flush(timeout_millis) if target is not None else True


class _Made:
    """What an ``init()`` made a provider with, and its relay once it is reused."""

    def __init__(self, sample_rate: float) -> None:
        self.sample_rate = sample_rate
        self.relay: _Relay | None = None


_made_here: weakref.WeakKeyDictionary[TracerProvider, _Made] = weakref.WeakKeyDictionary()


class ProviderChoice:
    """The provider ``init()`` uses, and how to put its processor on it."""

    def __init__(self, provider: TracerProvider, *, apps: bool, relay: _Relay | None) -> None:
        self.provider = provider
        #: The app set it up (``phoenix.otel.register()``, Langfuse, Logfire).
        self.apps = apps
        self._relay = relay

    def add(self, processor: SpanProcessor) -> None:
        """Put ``processor`` on the provider, through the relay on a reused one."""
        if self._relay is None:
            self.provider.add_span_processor(processor)
        else:
            self._relay.target = processor


def choose_provider(
    resource: Resource, sample_rate: float, *, global_provider: bool
) -> ProviderChoice:
    """The app's global SDK provider (joined, so one trace never splits between two
    pipelines), else an earlier ``init()``'s still global one that fits, else a new one."""
    current = otel_trace.get_tracer_provider() if global_provider else None
    if isinstance(current, TracerProvider):
        made = _made_here.get(current)
        if made is None:
            return ProviderChoice(current, apps=True, relay=None)
        if current.resource == resource and made.sample_rate == sample_rate:
            if made.relay is None:
                made.relay = _Relay()
                current.add_span_processor(made.relay)
            return ProviderChoice(current, apps=False, relay=made.relay)
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
    _made_here[provider] = _Made(sample_rate)
    return ProviderChoice(provider, apps=False, relay=None)


def install_global_provider(provider: TracerProvider) -> None:
    """Become the global provider if none is set, so instrumentations join in."""
    current = otel_trace.get_tracer_provider()
    if isinstance(current, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider):
        otel_trace.set_tracer_provider(provider)
    elif current is not provider:
        logger.info(
            "neatlogs_web: a global tracer provider that is not OpenTelemetry's SDK is "
            "set; spans of other instrumentations stay there"
        )
