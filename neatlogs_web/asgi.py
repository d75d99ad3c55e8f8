"""Pure ASGI middleware: one session per request, bound for the request's life.

A plain ASGI class, never Starlette's ``BaseHTTPMiddleware`` (which runs the
app in another task and cuts contextvars). The binding is set before the app
is awaited and reset after it returns, so it covers the streamed body,
Starlette background tasks (run inside ``await app(...)``), a WebSocket
connection and ``run_in_threadpool`` calls, and never leaks into another
request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, Unpack

from opentelemetry.context import get_current as current_otel_context

from neatlogs_web import identity, sdk
from neatlogs_web._request import open_binding, response_headers
from neatlogs_web.context import SessionBinding, bind, reset_binding
from neatlogs_web.identity import NeedsBody, RequestInputs, Resolution, SessionOptions

__all__ = ["SCOPE_STATE_KEY", "NeatlogsSessionMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Key in ``scope["state"]`` (Starlette's ``request.state``) holding the session id.
SCOPE_STATE_KEY: Final = "neatlogs_session_id"
# Marks a scope already handled, so a middleware applied twice binds once.
_SCOPE_BINDING_KEY: Final = "neatlogs_web.binding"
_LIFESPAN_DONE: Final = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})
_FLUSH_AT_SHUTDOWN_S: Final = 10.0


class NeatlogsSessionMiddleware:
    """Resolve each request's session and bind it while the app runs.

    ``end_user`` is an optional callable from the ASGI scope to an end-user
    id, stamped as ``neatlogs.end_user.id``. Other options: see
    :class:`neatlogs_web.identity.SessionOptions` and the README.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | bytes | list[str | bytes] | None = None,
        *,
        end_user: Callable[[Scope], str | None] | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.app = app
        self.policy = identity.SessionPolicy(secret_key=secret_key, **options)
        self.end_user = end_user
        policy = self.policy
        self._cookie_header = b"cookie" if policy.wants_cookie else None
        self._session_header = (
            policy.header_name_lower.encode("latin-1") if policy.wants_session_header else None
        )
        self._baggage_header = b"baggage" if policy.wants_baggage else None
        self._conversation_header = (
            policy.conversation_header_lower.encode("latin-1")
            if policy.wants_conversation_header and policy.conversation_header_lower
            else None
        )
        self._excluding = bool(policy.exclude_exact or policy.exclude_prefixes)
        self._cookie_alone = policy.cookie_decides_alone
        body_headers = (b"content-type", b"content-length") if policy.reads_json_body else ()
        # The header names this policy reads: one set lookup per request header.
        self._wanted = frozenset(
            name
            for name in (
                self._cookie_header,
                self._session_header,
                self._conversation_header,
                self._baggage_header,
                *body_headers,
            )
            if name is not None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "lifespan":
            await self.app(scope, receive, _flush_at_shutdown(send))
            return
        if (
            scope_type not in ("http", "websocket")
            or _SCOPE_BINDING_KEY in scope
            or (self._excluding and self.policy.is_excluded(scope["path"]))
        ):
            await self.app(scope, receive, send)
            return

        policy = self.policy
        wanted = self._wanted
        cookie = session_header = conversation_header = baggage = None
        content_type = content_length = None
        for name, value in scope["headers"]:
            if name not in wanted:
                continue
            if name == b"cookie":
                # Several Cookie headers (HTTP/2) are one list.
                decoded = value.decode("latin-1")
                cookie = f"{cookie}; {decoded}" if cookie else decoded
            elif name == self._session_header:
                session_header = value.decode("latin-1")
            elif name == self._conversation_header:
                conversation_header = value.decode("latin-1")
            elif name == self._baggage_header:
                baggage = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value

        resolution = None
        if (
            cookie is not None
            and session_header is None
            and conversation_header is None
            and baggage is None
            and self._cookie_alone
        ):
            # A returning user: the decision for this cookie is usually remembered.
            remembered = policy.remembered_cookies.get(cookie)
            if remembered is not None and remembered[0] <= time.time() <= remembered[1]:
                resolution = remembered[2]
        if resolution is None:
            inputs = RequestInputs(
                scope["path"],
                scope.get("query_string", b"").decode("latin-1"),
                cookie,
                session_header,
                conversation_header,
                baggage,
            )
            https = scope.get("scheme") in ("https", "wss")
            resolved = policy.resolve(inputs, https=https)
            if isinstance(resolved, NeedsBody):
                if scope_type == "http" and policy.needs_body(content_type, scope["method"]):
                    receive = await self._read_json_field(inputs, receive, content_length)
                resolved = policy.resolve(inputs, https=https, resume_at=resolved.resume_at)
            assert isinstance(resolved, Resolution)
            resolution = resolved

        if self.end_user is None and not current_otel_context():
            # open_binding()'s common case inline: no end user, no active span to stamp.
            binding = SessionBinding(resolution.session_id, None, resolution.previous_session_id)
        else:
            binding = open_binding(resolution, self.end_user, scope)
        scope[_SCOPE_BINDING_KEY] = binding
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[SCOPE_STATE_KEY] = resolution.session_id

        if (
            resolution.set_cookie is not None
            or resolution.echo_token is not None
            or policy.expose_trace_id
        ):
            send = self._add_session_headers(send, resolution, binding)
        token = bind(binding)
        try:
            await self.app(scope, receive, send)
        finally:
            # context.unbind() inline, saving a call on every request: a coroutine
            # closed by the garbage collector may run this in another context.
            try:  # noqa: SIM105 - contextlib.suppress costs more than the call saved
                reset_binding(token)
            except ValueError:
                pass

    def _add_session_headers(
        self, send: Send, resolution: Resolution, binding: SessionBinding
    ) -> Send:
        policy = self.policy

        async def send_with_session(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                extra = [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in response_headers(policy, resolution, binding)
                ]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return send_with_session

    async def _read_json_field(
        self, inputs: RequestInputs, receive: Receive, content_length: bytes | None
    ) -> Receive:
        """Read a small body for its JSON field and return a replaying ``receive``."""
        policy = self.policy
        limit = policy.json_body_limit
        if content_length is not None and content_length.isdigit() and int(content_length) > limit:
            identity.reject("conversation_json", "oversized")
            return receive
        buffered: list[Message] = []
        body = b""
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > limit:
                identity.reject("conversation_json", "oversized")
                break
            if not message.get("more_body", False):
                field = policy.conversation_json_field
                assert field is not None
                inputs.json_value = identity.parse_json_field(body, field)
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        return replay


def _flush_at_shutdown(send: Send) -> Send:
    """Flush queued spans before telling the server the app has stopped.

    uvicorn re-raises SIGTERM after a graceful stop, so ``atexit`` hooks never
    run there: lifespan shutdown is the last moment we are sure to get.
    """

    async def send_after_flush(message: Message) -> None:
        if message["type"] in _LIFESPAN_DONE:
            sdk.flush_at_exit()  # bounded by init(shutdown_timeout_s=...)
        await send(message)

    return send_after_flush
