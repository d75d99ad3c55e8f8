"""Hand-written references: what a developer would write instead of using ours.

The floor reads one header, sets a ``ContextVar`` and resets it: the least
any session middleware can do. The verify reference adds what a middleware
without a cache of verified tokens pays on every request: an itsdangerous
``TimestampSigner`` check. The cookie middleware and the stamping processor
are the by-hand way to put a user's session on every span: a plain session
cookie into a ``ContextVar`` (or into a tracing SDK's own session context),
and a ``SpanProcessor`` that copies it onto each span as it starts. The
contract floor is the least a middleware meeting DESIGN.md can do per
request, written inline: what the speed guards leave room for.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from itsdangerous import BadSignature, TimestampSigner
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

_value: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_value", default=None)
#: The session a hand-written cookie middleware bound for the current request.
session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bench_session_id", default=None
)

#: The cookie the verify references read.
VERIFY_COOKIE = "signed"


def make_signer(secret: str) -> TimestampSigner:
    return TimestampSigner(secret, salt=b"bench", digest_method=hashlib.sha256)


class AsgiHeaderFloor:
    """Pure ASGI: one header into a ContextVar for the app's duration."""

    def __init__(self, app: Any, header: bytes = b"x-request-id") -> None:
        self.app = app
        self.header = header

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = None
        for name, raw in scope["headers"]:
            if name == self.header:
                value = raw.decode("latin-1")
                break
        token = _value.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            _value.reset(token)


class AsgiVerifyEveryRequest:
    """Pure ASGI: verify a signed cookie with itsdangerous on every request."""

    def __init__(self, app: Any, secret: str) -> None:
        self.app = app
        self.signer = make_signer(secret)
        self.prefix = VERIFY_COOKIE + "="

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        value = None
        for name, raw in scope["headers"]:
            if name == b"cookie":
                value = _prefixed_value(raw.decode("latin-1"), self.prefix)
                break
        session = None
        if value is not None:
            try:
                session = self.signer.unsign(value, max_age=3600).decode()
            except BadSignature:
                session = None
        token = _value.set(session)
        try:
            await self.app(scope, receive, send)
        finally:
            _value.reset(token)


def _prefixed_value(cookie: str, prefix: str) -> str | None:
    """What follows ``prefix`` (``name=``) in a ``Cookie`` header, up to the next ``;``."""
    at = cookie.find(prefix)
    if at < 0:
        return None
    end = cookie.find(";", at)
    return cookie[at + len(prefix) : end if end >= 0 else None]


class _Binding:
    """A per-request object, as a session middleware binds one (it may be rebound)."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: str | None) -> None:
        self.session_id = session_id


_binding: contextvars.ContextVar[_Binding | None] = contextvars.ContextVar(
    "bench_binding", default=None
)


class AsgiRememberedSignedCookie:
    """Pure ASGI: the least a signed-cookie session middleware does for a returning user.

    The cookie is verified once per distinct ``Cookie`` header and remembered
    with its signing time (without a bound, unlike ours); each request looks
    the header up, checks the age against the clock, and binds a fresh
    per-request object in a ``ContextVar``. Inline, no configuration, no
    other sources, nothing for abandoned streams or a framework's request span.
    """

    def __init__(
        self, app: Any, secret: str, cookie: str = VERIFY_COOKIE, salt: bytes = b"bench"
    ) -> None:
        self.app = app
        self.signer = TimestampSigner(secret, salt=salt, digest_method=hashlib.sha256)
        self.prefix = cookie + "="
        self.remembered: dict[bytes, tuple[str, float]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self._session(scope)
        token = _binding.set(_Binding(session))
        try:
            await self.app(scope, receive, send)
        finally:
            _binding.reset(token)

    def _session(self, scope: Any) -> str | None:
        """The session of the request's cookie, verified once per ``Cookie`` header."""
        header = dict(scope["headers"]).get(b"cookie")
        if header is None:
            return None
        found = self.remembered.get(header) or self._verify(header)
        if found is None or time.time() - found[1] > 3600:
            return None
        return found[0]

    def _verify(self, header: bytes) -> tuple[str, float] | None:
        cookie = _prefixed_value(header.decode("latin-1"), self.prefix)
        if cookie is None:
            return None
        try:
            value, signed = self.signer.unsign(cookie, return_timestamp=True)
        except BadSignature:
            return None
        found = self.remembered[header] = (value.decode(), signed.timestamp())
        return found


#: The request in effect, as the contract floor marks it (``AsgiContractFloor``).
_request: contextvars.ContextVar[list[int | None] | None] = contextvars.ContextVar(
    "bench_request", default=None
)


class AsgiContractFloor(AsgiRememberedSignedCookie):
    """Pure ASGI: the least DESIGN.md asks of a returning user's request, inline.

    The remembered signed cookie above, plus the two things every request
    now does: it starts clean (the server's ``receive`` and ``send`` run with
    no session bound, no request current and nothing in the OpenTelemetry
    context, and a request that inherited another's leaves that context for
    an empty one) and it notes what the person waited for (when the response started,
    its first non-empty chunk, its last). Nothing else: no framework request
    span, no turns, no configuration, no exclusions or preflights, no event
    loop guard, no fallback on error.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self._session(scope)
        entered = None
        if _request.get() is not None:
            entered = otel_context.attach(Context())
        # arrival, response start, first chunk, last chunk
        times: list[int | None] = [time.monotonic_ns(), None, None, None]

        async def receive_outside() -> Any:
            binding_token, request_token = _binding.set(None), _request.set(None)
            otel_token = otel_context.attach(Context()) if otel_context.get_current() else None
            try:
                return await receive()
            finally:
                if otel_token is not None:
                    otel_context.detach(otel_token)
                _request.reset(request_token)
                _binding.reset(binding_token)

        async def send_outside(message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                now = time.monotonic_ns()
                if times[2] is None and message.get("body"):
                    times[2] = now
                if not message.get("more_body", False):
                    times[3] = now
            elif kind == "http.response.start":
                times[1] = time.monotonic_ns()
            binding_token, request_token = _binding.set(None), _request.set(None)
            otel_token = otel_context.attach(Context()) if otel_context.get_current() else None
            try:
                await send(message)
            finally:
                if otel_token is not None:
                    otel_context.detach(otel_token)
                _request.reset(request_token)
                _binding.reset(binding_token)

        request_token = _request.set(times)
        binding_token = _binding.set(_Binding(session))
        try:
            await self.app(scope, receive_outside, send_outside)
        finally:
            _binding.reset(binding_token)
            _request.reset(request_token)
            if entered is not None:
                otel_context.detach(entered)


class WsgiHeaderFloor:
    """WSGI: one environ header into a ContextVar around the app call."""

    def __init__(self, app: Any, key: str = "HTTP_X_REQUEST_ID") -> None:
        self.app = app
        self.key = key

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        token = _value.set(environ.get(self.key))
        try:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        finally:
            _value.reset(token)


def cookie_value(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` header, if any."""
    for header, raw in headers:
        if header == b"cookie":
            for pair in raw.decode("latin-1").split(";"):
                key, _, value = pair.strip().partition("=")
                if key == name:
                    return value
    return None


class AsgiCookieSession:
    """Pure ASGI: a plain session cookie bound for the app's duration.

    By default the value goes into the ``session_id`` ContextVar (set, then
    reset in ``finally``); ``bind`` hands it to a tracing SDK's own session
    context manager instead (Langfuse's ``propagate_attributes``, the neatlogs
    SDK's ``identify``).
    """

    def __init__(
        self,
        app: Any,
        cookie: str = "session",
        bind: Callable[[str | None], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.app = app
        self.cookie = cookie
        self.bind = bind

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = cookie_value(scope["headers"], self.cookie)
        if self.bind is not None:
            with self.bind(value):
                await self.app(scope, receive, send)
            return
        token = session_id.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            session_id.reset(token)


class SessionStamper(SpanProcessor):
    """Copies the bound session onto every span as it starts, under each of ``keys``."""

    def __init__(self, keys: tuple[str, ...] = ("session.id",)) -> None:
        self.keys = keys

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        value = session_id.get()
        if value is not None:
            for key in self.keys:
                span.set_attribute(key, value)
