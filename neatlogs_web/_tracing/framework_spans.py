"""Which spans are a web framework's own, told apart from the app's work.

A request in which only the framework's own spans happened (a health probe,
a static file, ``GET /whoami``) is not part of any conversation, so those
spans must not bring the session to a backend; a span of the app's work (an
LLM or database call, a ``trace()`` block) does. A framework's spans are
known by the instrumentation scope its tracer was named with, as the
installed packages name it: FastAPI's own telemetry (``fastapi``), Starlette's
``OpenTelemetryMiddleware`` (``starlette``), and the OpenTelemetry
instrumentations of ASGI, WSGI and the web frameworks
(``opentelemetry.instrumentation.asgi``, ...; Django's and Pyramid's name a
module below theirs). A call out of the app (a ``CLIENT`` span) is the app's
work, whichever instrumentation traced it.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

__all__ = ["FRAMEWORK_SCOPES", "is_framework_span"]

#: Instrumentation scopes of the web frameworks' own spans: their request spans,
#: operation spans (``fastapi.endpoint``) and ASGI ``http send`` / ``http receive``.
FRAMEWORK_SCOPES: Final = frozenset(
    {
        "fastapi",
        "starlette",
        "opentelemetry.instrumentation.asgi",
        "opentelemetry.instrumentation.wsgi",
        "opentelemetry.instrumentation.fastapi",
        "opentelemetry.instrumentation.starlette",
        "opentelemetry.instrumentation.flask",
        "opentelemetry.instrumentation.django",
        "opentelemetry.instrumentation.falcon",
        "opentelemetry.instrumentation.pyramid",
        "opentelemetry.instrumentation.tornado",
        "opentelemetry.instrumentation.aiohttp_server",
    }
)


def is_framework_span(span: ReadableSpan) -> bool:
    """Whether ``span`` is a web framework's own: its scope is one of
    :data:`FRAMEWORK_SCOPES` or a module below one, and it is no call out of the app."""
    scope = span.instrumentation_scope
    if scope is None or span.kind is SpanKind.CLIENT:
        return False
    name = scope.name
    while name:
        if name in FRAMEWORK_SCOPES:
            return True
        name = name.rpartition(".")[0]
    return False
