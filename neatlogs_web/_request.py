"""What happens to a request's session binding once it is resolved.

Only the protocol glue differs between ASGI and WSGI; building the binding,
stamping the framework's request span, the response headers, and rebinding
after routing (``bind_session``) live here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from opentelemetry import trace as otel_trace
from opentelemetry.context import get_current as current_otel_context

from neatlogs_web import identity, sdk
from neatlogs_web.context import SessionBinding, bind, current_request_binding
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
    context = current_otel_context()
    if context:  # an empty context has no active span: skip the lookup
        active = otel_trace.get_current_span(context)
        if active.is_recording():
            sdk.stamp_span(active, binding)
            binding.request_span = active
    return binding


def bind_session(session_id: str, *, end_user_id: str | None = None) -> bool:
    """Rebind the current request to ``session_id``, e.g. a conversation id
    known only after routing. Returns ``False`` (and counts it) for an invalid id.

    The request's one binding is changed in place, so its streamed body,
    background tasks and thread-pool calls follow; the framework's request span
    is re-stamped. Spans already started keep the session they started with.
    Outside a request, binds ``session_id`` in the current context.
    """
    if not identity.is_valid_session_id(session_id):
        identity.reject("bind_session", "invalid")
        return False
    if end_user_id is not None and not identity.is_valid_session_id(end_user_id):
        identity.reject("bind_session", "invalid_end_user")
        end_user_id = None
    binding = current_request_binding()
    if binding is None:
        bind(SessionBinding(session_id, end_user_id))
        return True
    binding.session_id = session_id
    binding.previous_session_id = None
    if end_user_id is not None:
        binding.end_user_id = end_user_id
    request_span = binding.request_span
    if isinstance(request_span, otel_trace.Span) and request_span.is_recording():
        sdk.stamp_span(request_span, binding)
    return True


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


def response_headers(
    policy: SessionPolicy, resolution: Resolution, binding: SessionBinding
) -> list[tuple[str, str]]:
    """``Set-Cookie`` (with ``Vary: Cookie``), the echoed token and the latest
    turn's trace id, as needed. Called when the response starts; the middlewares
    wrap the response only when ``set_cookie``, ``echo_token`` or
    ``policy.expose_trace_id`` is set (checked inline: it runs on every request)."""
    headers = []
    if resolution.set_cookie is not None:
        headers.append(("Set-Cookie", resolution.set_cookie))
        headers.append(("Vary", "Cookie"))
    if resolution.echo_token is not None:
        headers.append((policy.header_name, resolution.echo_token))
    if policy.expose_trace_id and binding.last_trace_id is not None:
        headers.append((identity.TRACE_ID_HEADER, f"{binding.last_trace_id:032x}"))
    return headers
