"""The exporter: which one ``init()`` asked for, and what it sends.

The wrapper filters what the neatlogs backend rejects (HTTP transport spans),
adds a completion marker after each root (built as a plain ``ReadableSpan``,
sent in the root's own request), hands the judgments of an exported batch
to the backend's own API where it has one (``native_feedback``), and counts
what settled, so ``flush`` can tell the truth.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from neatlogs_web._export.backends import Backend, destination, traces_url
from neatlogs_web._export.health import (
    UNKNOWN,
    ExportVoice,
    ExportWatch,
    quiet_while_exporting,
    trouble_of,
)
from neatlogs_web._export.native_feedback import NativeFeedback
from neatlogs_web._export.stats import ExportStats

COMPLETE_MARKER_NAME: Final = "neatlogs.trace.complete"
#: Where the local collector (``neatlogs-web serve``) listens: spans go there by default.
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


@dataclass(frozen=True)
class ExportTarget:
    """The exporter ``init()`` asked for, and how to talk about it."""

    exporter: SpanExporter
    voice: ExportVoice
    watch: ExportWatch
    #: Where judgments go too (Phoenix, Langfuse), after their batch was exported.
    native: NativeFeedback | None = None


def build_target(
    exporter: SpanExporter | str | None,
    *,
    endpoint: str,
    api_key: str | None,
    timeout_s: float | None,
    backend: Backend = "otlp",
) -> ExportTarget | None:
    """The exporter ``init()`` asked for; ``None`` means export nothing.

    Our OTLP exporter goes where ``backend`` takes spans at ``endpoint``, with
    its credentials, and brings judgments to its own API where it has one.
    """
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

    place = destination(backend, endpoint, api_key)
    url = place.traces_url
    # The exporter and our deadline on it read the same timeout.
    timeout = export_timeout(timeout_s)
    watch = ExportWatch(timeout)
    quiet_while_exporting(OTLPSpanExporter.__module__)
    otlp = OTLPSpanExporter(
        endpoint=url,
        headers=place.headers,
        compression=Compression.Gzip,
        timeout=timeout,
        session=watch.session(),
    )
    native = None
    if place.feedback_url is not None:
        native = NativeFeedback(backend, place.feedback_url, place.all_headers(), timeout_s=timeout)
    return ExportTarget(otlp, ExportVoice(f"{url} (OTLP/HTTP)", _fix(url)), watch, native)


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
        self.native = target.native
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
            if self.native is not None and not self.watch.stopped:
                # After settling: a flush waits for the spans, which a slow feedback
                # API must not hold up.
                sent, failed = self.native.send(batch, self.watch.deadline)
                stats.judged(sent=sent, failed=failed)
        else:
            if not self.watch.stopped:  # after shutdown, lost_at_exit said it all
                self.voice.failed(outcome.trouble or UNKNOWN, len(batch))
            stats.settled(failed=len(batch), filtered=filtered)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()
        if self.native is not None:
            self.native.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
