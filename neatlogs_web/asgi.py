"""Pure ASGI middleware: one session per request, bound for the request's life.

A plain ASGI class, never Starlette's ``BaseHTTPMiddleware`` (which runs the
app in another task and cuts contextvars). The binding is set before the app
is awaited and reset after it returns, so it covers the streamed body,
Starlette background tasks (run inside ``await app(...)``), a WebSocket
connection and ``run_in_threadpool`` calls, and never leaks into another
request. What to bind is decided by the shared resolver; this module does
the ASGI side: it reads the request, runs the server's calls outside it, and
changes the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Final, Unpack

from neatlogs_web._session.binding import SessionBinding, bind, unbind
from neatlogs_web._session.counters import reject
from neatlogs_web._session.options import SessionConfig, SessionOptions, check_end_user
from neatlogs_web._session.resolution import NeedsBody, Resolution
from neatlogs_web._session.signing import SecretKeys
from neatlogs_web._session.sources import RequestInputs
from neatlogs_web._tracing import setup
from neatlogs_web._tracing.felt_latency import ResponseTimes
from neatlogs_web._tracing.request_trace import RequestTrace, end_request, start_request
from neatlogs_web._web.clean_start import (
    guard_event_loop,
    receive_outside_request,
    send_outside_request,
)
from neatlogs_web._web.feedback_endpoint import with_feedback_endpoint
from neatlogs_web._web.flow import RequestFlow

__all__ = ["SCOPE_STATE_KEY", "NeatlogsSessionMiddleware"]

logger = logging.getLogger("neatlogs_web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Headers = Sequence[tuple[bytes, bytes]]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Key in ``scope["state"]`` (Starlette's ``request.state``) holding the session id.
SCOPE_STATE_KEY: Final = "neatlogs_session_id"
# Marks a scope already handled, so a middleware applied twice binds once.
_SCOPE_BINDING_KEY: Final = "neatlogs_web.binding"
_LIFESPAN_DONE: Final = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})


class NeatlogsSessionMiddleware:
    """Resolve each request's session and bind it while the app runs.

    ``end_user`` is an optional callable from the ASGI scope to an end-user
    id, stamped as ``neatlogs.end_user.id``. The other options are
    :class:`neatlogs_web._session.options.SessionConfig`'s (see the README's table).
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: SecretKeys | None = None,
        *,
        end_user: Callable[[Scope], str | None] | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.app = app
        #: A configuration error kept to stop the server through the lifespan protocol.
        self.startup_error: Exception | None = None
        try:
            check_end_user(end_user)
            config = SessionConfig.from_options(type(self).__name__, secret_key, options)
            self.flow = flow = RequestFlow[Scope](config, end_user)
        except (TypeError, ValueError) as error:
            if not _server_is_running():
                raise
            # Starlette builds add_middleware() classes inside the server's first
            # call, the lifespan: raised there, uvicorn reads the error as
            # "lifespan unsupported" and then serves a 500 per request. Failing
            # the lifespan startup instead stops the server with this message.
            logger.error("neatlogs_web: %s", error)
            self.startup_error = error
            return
        self.resolver = resolver = flow.resolver
        #: What runs bound: the app, behind the feedback endpoint when there is one.
        self._bound_app = with_feedback_endpoint(app, resolver.response.feedback_tokens, config)
        # Request header -> the RequestInputs field it fills, for the sources in use.
        self._wanted = [(name.encode("latin-1"), field) for name, field in flow.header_fields()]
        # Headers whose presence means the cookie does not decide alone.
        self._before_cookie = tuple(
            name.encode("latin-1") for name in resolver.headers_before_cookie
        )
        #: The returning user's shortcut, or none when the cookie never decides alone.
        self._recall: Callable[[Headers], Resolution | None] = (
            self._recall_by_cookie if resolver.recalls_cookie else _nothing_remembered
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # First, so the lifespan startup installs it before any request runs.
        guard_event_loop()
        scope_type = scope["type"]
        if scope_type not in ("http", "websocket"):
            if scope_type != "lifespan":
                await self.app(scope, receive, send)
            elif self.startup_error is not None:
                await _fail_startup(receive, send, self.startup_error)
            else:
                await self.app(scope, receive, _flush_at_shutdown(send))
            return
        if self.startup_error is not None:
            raise self.startup_error
        if _SCOPE_BINDING_KEY in scope:  # applied twice: the outer one bound it
            await self.app(scope, receive, send)
            return

        # A request starts clean, whatever context the server started it in (see
        # _web.clean_start): the server's own code runs outside it, another
        # request's spans are left behind, and it binds its own value, even "no session".
        times = ResponseTimes()
        trace = start_request(times)
        flow = self.flow

        def before_send(message: Message) -> None:
            if times.note_sending(message):
                # The answer's last part: its figures go on the turn before an
                # instrumentation outside ours ends the request's span with it.
                flow.answer_out(trace)

        receive = receive_outside_request(receive, times.note_receiving)
        send = send_outside_request(send, before_send)
        try:
            binding: SessionBinding | None = None
            if not self._binds_nothing(scope):
                resolution, binding, receive = await self._resolve(scope, receive, trace)
                scope.setdefault("state", {})[SCOPE_STATE_KEY] = resolution.session_id
                if resolution.changes_response:
                    send = self._add_session_headers(send, resolution, trace)
            scope[_SCOPE_BINDING_KEY] = binding
            token = bind(binding)
            try:
                await self._bound_app(scope, receive, send)
            finally:
                self.flow.answer_out(trace)
                unbind(token)
        finally:
            end_request(trace)

    def _binds_nothing(self, scope: Scope) -> bool:
        """Excluded paths and CORS preflights: no session, no cookie, nothing echoed."""
        resolver = self.resolver
        return (resolver.excludes_paths and resolver.is_excluded(scope["path"])) or (
            scope.get("method") == "OPTIONS" and _is_preflight(scope)
        )

    async def _resolve(
        self, scope: Scope, receive: Receive, trace: RequestTrace
    ) -> tuple[Resolution, SessionBinding, Receive]:
        """The request's session and its binding, and the ``receive`` the app
        gets (it replays a JSON body read for a conversation id)."""
        flow = self.flow
        websocket = scope["type"] == "websocket"
        try:
            resolution = self._recall(scope["headers"])  # a returning user, usually
            if resolution is None:
                inputs = self._request_inputs(scope)
                https = scope.get("scheme") in ("https", "wss")
                resolved = self.resolver.resolve(inputs, https=https)
                if isinstance(resolved, NeedsBody):
                    receive = await self._read_json_field(scope, inputs, receive)
                    resolved = self.resolver.resume(inputs, resolved, https=https)
                resolution = resolved
            binding = flow.open(resolution, scope, trace, websocket=websocket)
        except Exception:
            where = "resolving an ASGI request's session"
            resolution, binding = flow.fallback(where, trace, websocket=websocket)
        return resolution, binding, receive

    def _recall_by_cookie(self, raw: Headers) -> Resolution | None:
        """The remembered decision for a browser whose cookie alone decides."""
        headers = dict(raw)  # one pass in C; a repeated name keeps its last value
        cookie = headers.get(b"cookie")
        if cookie is None or len(headers) < len(raw):
            return None  # no cookie, or a repeated header (the full path joins them)
        for name in self._before_cookie:
            if name in headers:  # a source read before the cookie decides
                return None
        return self.resolver.recall(cookie)

    def _request_inputs(self, scope: Scope) -> RequestInputs:
        inputs = RequestInputs(scope["path"], scope.get("query_string", b"").decode("latin-1"))
        raw = scope["headers"]
        headers = dict(raw)
        if len(headers) < len(raw):
            # A repeated header is all of its lines, as a WSGI server joins them,
            # not its last: the app may read another line than the last.
            headers = _joined_lines(raw)
        for name, field in self._wanted:
            value = headers.get(name)
            if value is not None:
                setattr(inputs, field, value.decode("latin-1"))
        if inputs.cookie is not None:
            # Always the bytes: str and bytes keys in one memo would be compared
            # (equal hashes for ASCII), which python -bb turns into an error.
            inputs.cookie_as_sent = headers[b"cookie"]
        return inputs

    def _add_session_headers(self, send: Send, resolution: Resolution, trace: RequestTrace) -> Send:
        flow = self.flow

        async def send_with_session(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                extra = [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in flow.response_headers(resolution, trace)
                ]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return send_with_session

    async def _read_json_field(
        self, scope: Scope, inputs: RequestInputs, receive: Receive
    ) -> Receive:
        """Read a small body an app might parse as JSON, whatever the method, for
        its conversation field; the returned ``receive`` replays what was read,
        so the app sees the body unchanged."""
        resolver = self.resolver
        raw = scope["headers"]
        # Every line of a repeated Content-Type: frameworks differ on the one they read.
        content_type = b", ".join(value for name, value in raw if name == b"content-type")
        length = dict(raw).get(b"content-length", b"")
        limit = resolver.config.json_body_limit
        if scope["type"] != "http" or not resolver.body_may_hold_conversation(
            content_type.decode("latin-1")
        ):
            resolver.read_json_body(inputs, b"")
            return receive
        if length.isdigit() and int(length) > limit:
            reject("conversation_json", "oversized")
            resolver.read_json_body(inputs, None)
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
                reject("conversation_json", "oversized")
                break
            if not message.get("more_body", False):
                resolver.read_json_body(inputs, body)
                break
        if not inputs.body_read:
            resolver.read_json_body(inputs, None)

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        return replay


def _nothing_remembered(raw: Headers) -> None:
    """The cookie never decides alone (sources read before it, or no cookie)."""
    return None


def _joined_lines(raw: Headers) -> dict[bytes, bytes]:
    """Each header's lines as one value: joined with ``, `` (RFC 9110), and the
    ``Cookie`` lines (HTTP/2 sends one per cookie) with ``; `` (RFC 6265)."""
    lines: dict[bytes, list[bytes]] = {}
    for name, value in raw:
        lines.setdefault(name, []).append(value)
    return {
        name: (b"; " if name == b"cookie" else b", ").join(values) for name, values in lines.items()
    }


def _is_preflight(scope: Scope) -> bool:
    """Whether an OPTIONS request is a CORS preflight: the browser asking, not the
    user acting. It binds nothing, sets no cookie and echoes nothing, wherever
    CORSMiddleware sits. The caller checks the method first: this scans the headers."""
    return any(name == b"access-control-request-method" for name, _ in scope["headers"])


def _server_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _fail_startup(receive: Receive, send: Send, error: Exception) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed", "message": f"neatlogs_web: {error}"})


def _flush_at_shutdown(send: Send) -> Send:
    """Flush queued spans before telling the server the app has stopped.

    uvicorn re-raises SIGTERM after a graceful stop, so ``atexit`` hooks never
    run there: lifespan shutdown is the last moment we are sure to get.
    """

    async def send_after_flush(message: Message) -> None:
        if message["type"] in _LIFESPAN_DONE:
            setup.flush_at_exit()  # bounded by init(shutdown_timeout_s=...)
        await send(message)

    return send_after_flush
