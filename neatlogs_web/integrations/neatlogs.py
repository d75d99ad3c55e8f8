"""Bridge to the neatlogs SDK: its spans carry our session.

Apps that already trace with ``neatlogs.init()`` / ``neatlogs.trace()`` /
``@neatlogs.span`` / ``neatlogs.wrap()`` export through the SDK's own
pipeline and tracer provider. Two ways in:

- :func:`tracer_provider`, handed to ``neatlogs.init(tracer_provider=...)``:
  a provider whose span processor stamps the session in effect on every span
  the SDK starts, as ``init()`` does on ours. It follows
  ``neatlogs_web.bind_session()`` after routing, like every span of ours.
- The identity middlewares, for an app whose ``neatlogs.init()`` you cannot
  change: they enter ``neatlogs.identify()`` with the request's resolved
  session (and end-user id) around the app, which the SDK reads when a root
  span starts. ``identify()`` holds fixed values, so a later
  ``bind_session()`` does not reach the SDK's roots this way (and they
  would overwrite what :func:`tracer_provider` stamps on roots: use one or
  the other). Install them inside ``NeatlogsSessionMiddleware``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import neatlogs
from opentelemetry.sdk.trace import TracerProvider

from neatlogs_web._session.binding import current_binding
from neatlogs_web._tracing.stamping import (
    END_USER_KEY_PRESETS,
    SESSION_KEY_PRESETS,
    SessionSpanProcessor,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
else:
    StartResponse = WSGIApplication = WSGIEnvironment = Any

__all__ = ["NeatlogsIdentityMiddleware", "NeatlogsIdentityWSGIMiddleware", "tracer_provider"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def tracer_provider(**options: Any) -> TracerProvider:
    """A tracer provider for ``neatlogs.init(tracer_provider=...)`` (or
    ``neatlogs.Client``) whose spans carry the session in effect when they start.

    ::

        neatlogs.init(workflow_name="support-bot", tracer_provider=tracer_provider())

    Every span the SDK starts in a request (its roots, ``wrap()``'s auto
    roots, children) gets ``neatlogs.session.id`` and, where known,
    ``neatlogs.end_user.id``, including after a ``bind_session()``.
    ``options`` go to ``TracerProvider``; the SDK adds its own exporter.
    """
    provider = TracerProvider(**options)
    provider.add_span_processor(
        SessionSpanProcessor(SESSION_KEY_PRESETS["neatlogs"], END_USER_KEY_PRESETS["neatlogs"])
    )
    return provider


class NeatlogsIdentityMiddleware:
    """ASGI: run each request and WebSocket inside ``neatlogs.identify(...)``.

    ::

        app.add_middleware(NeatlogsIdentityMiddleware)      # inner: added first
        app.add_middleware(NeatlogsSessionMiddleware, ...)  # outer: resolves the session
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        binding = current_binding()
        if binding is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with neatlogs.identify(session_id=binding.session_id, end_user_id=binding.end_user_id):
            await self.app(scope, receive, send)


class NeatlogsIdentityWSGIMiddleware:
    """WSGI: the app call and each step of its response inside ``neatlogs.identify(...)``.

    ::

        app.wsgi_app = NeatlogsIdentityWSGIMiddleware(app.wsgi_app)
        app.wsgi_app = NeatlogsSessionMiddleware(app.wsgi_app, ...)
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        binding = current_binding()
        if binding is None:
            return self.app(environ, start_response)
        session_id, end_user_id = binding.session_id, binding.end_user_id
        with neatlogs.identify(session_id=session_id, end_user_id=end_user_id):
            result = self.app(environ, start_response)
        return _IdentifiedResponse(result, session_id, end_user_id)


class _IdentifiedResponse:
    """The response iterable, identified around each ``next()`` and ``close()``.

    A streamed body runs after the app call returned, possibly on another
    thread: identity is entered per step, never held across a ``yield``.
    """

    def __init__(self, iterable: Iterable[bytes], session_id: str, end_user_id: str | None) -> None:
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._identity = {"session_id": session_id, "end_user_id": end_user_id}

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        with neatlogs.identify(**self._identity):
            if self._iterator is None:
                self._iterator = iter(self._iterable)
            return next(self._iterator)

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is not None:
            with neatlogs.identify(**self._identity):
                close()
