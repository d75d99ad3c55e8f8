"""What both middlewares do once a request's session is resolved.

Only the protocol glue differs between ASGI and WSGI; building the binding,
stamping the framework's request span and the response headers live here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from opentelemetry import trace as otel_trace

from neatlogs_web import identity, sdk
from neatlogs_web.context import SessionBinding
from neatlogs_web.identity import Resolution, SessionPolicy

RequestT = TypeVar("RequestT")


def open_binding(
    resolution: Resolution,
    end_user: Callable[[RequestT], str | None] | None,
    request: RequestT,
) -> SessionBinding:
    """The request's binding; also stamped on the framework's active request span.

    Frameworks that trace themselves (FastAPI, the OpenTelemetry middlewares)
    start their server span before we run: backends that read the session
    from the root only (Phoenix) still see it there.
    """
    binding = SessionBinding(
        resolution.session_id,
        _end_user_id(end_user, request) if end_user is not None else None,
        resolution.previous_session_id,
    )
    active = otel_trace.get_current_span()
    if active.is_recording():
        sdk.stamp_span(active, binding)
    return binding


def _end_user_id(end_user: Callable[[RequestT], str | None], request: RequestT) -> str | None:
    try:
        value = end_user(request)
    except Exception:
        identity.reject("end_user", "error")
        return None
    if value is None:
        return None
    if not isinstance(value, str) or not identity.is_valid_session_id(value):
        identity.reject("end_user", "invalid")
        return None
    return value


def response_headers(policy: SessionPolicy, resolution: Resolution) -> list[tuple[str, str]]:
    """``Set-Cookie`` (with ``Vary: Cookie``) and the echoed token, as needed."""
    headers = []
    if resolution.set_cookie is not None:
        headers.append(("Set-Cookie", resolution.set_cookie))
        headers.append(("Vary", "Cookie"))
    if resolution.echo_token is not None:
        headers.append((policy.header_name, resolution.echo_token))
    return headers
