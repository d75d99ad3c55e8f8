"""Hand-written reference middlewares: the floor for this job, and one HMAC per request.

The floor reads one header, sets a ``ContextVar`` and resets it: the least
any session middleware can do. The verify reference adds what a middleware
without a cache of verified tokens pays on every request: an itsdangerous
``TimestampSigner`` check.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Iterable
from typing import Any

from itsdangerous import BadSignature, TimestampSigner

_value: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_value", default=None)

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
                cookie = raw.decode("latin-1")
                at = cookie.find(self.prefix)
                if at >= 0:
                    end = cookie.find(";", at)
                    value = cookie[at + len(self.prefix) : end if end >= 0 else None]
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
