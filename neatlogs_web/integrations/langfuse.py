"""The Langfuse SDK's provider: ship whole turns, not only their LLM calls.

``Langfuse(...)`` makes its own OpenTelemetry SDK provider global when no
provider is set yet (or adds its exporter to the global one), so
``neatlogs_web.init()`` joins it and every span of it carries the session.
But since version 4 the SDK exports only LLM spans by default: its own, those
with ``gen_ai.*`` attributes and those of known LLM instrumentations. A turn's
root (``trace("turn")``, or the framework's request span that became the
turn) is none of these, so Langfuse would show each turn as its LLM calls
alone, without the turn's name, input and output. Pass this filter::

    from langfuse import Langfuse
    from neatlogs_web.integrations.langfuse import should_export_span

    Langfuse(should_export_span=should_export_span)

It keeps what Langfuse keeps by default, and every span of a session but the
HTTP transport's: the turn (the framework's request span that became it
included, with its route, method and status) and the app's and
instrumentations' spans in it. A framework's inner request spans
(``fastapi.dependencies``, ``http send``, ...) stay out: those of a request
that ran no turn would otherwise show up in Langfuse as a trace of the
session that is no turn.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan

from neatlogs_web._export.exporter import is_transport_span
from neatlogs_web._tracing import setup
from neatlogs_web._tracing.conventions import KIND_KEY as TURN_KIND_KEY

__all__ = ["should_export_span"]


def _langfuse_default() -> Callable[[ReadableSpan], bool]:
    try:
        from langfuse.span_filter import is_default_export_span
    except ImportError:  # Langfuse 3 exports every span: nothing to add to
        return lambda span: False
    return is_default_export_span


_default_export: Callable[[ReadableSpan], bool] = _langfuse_default()


def should_export_span(span: ReadableSpan) -> bool:
    """Langfuse's default choice (LLM spans), and every span of a session that is
    not HTTP transport, or is the request span a turn made its own."""
    attributes = span.attributes
    if (
        attributes
        and any(key in attributes for key in setup.session_keys())
        and (TURN_KIND_KEY in attributes or not is_transport_span(span))
    ):
        return True
    return _default_export(span)
