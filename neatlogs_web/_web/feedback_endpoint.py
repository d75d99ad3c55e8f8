"""The middleware's feedback endpoint: ``POST {feedback_path}`` with a JSON judgment.

``{"token": ..., "score": ..., "label": ..., "comment": ...}`` is recorded on
the token's turn by :func:`neatlogs_web.record_feedback`, in the session the
request is bound to. Answers: ``204`` recorded; ``400`` a body that is not
that JSON object; ``403`` a token that is not a turn of this session
(malformed, forged, of another session); ``410`` an expired token; ``405``
another method than ``POST`` (``OPTIONS`` goes on to the app, for CORS);
``413`` a body over 16 KiB. Errors are ``{"error": <reason>, "detail": ...}``,
never a traceback page; each refusal is counted in ``stats()["rejected"]``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, Generic, NamedTuple, TypeVar

from neatlogs_web._session.counters import internal_error, reject
from neatlogs_web._session.feedback_tokens import (
    FeedbackRefused,
    FeedbackTokens,
    end_feedback,
    serve_feedback,
)
from neatlogs_web._session.options import SessionConfig
from neatlogs_web._tracing.feedback import record_feedback

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
else:
    StartResponse = WSGIApplication = WSGIEnvironment = Any

__all__ = [
    "FEEDBACK_BODY_LIMIT",
    "answer_feedback",
    "with_feedback_endpoint",
    "with_feedback_endpoint_wsgi",
]

FEEDBACK_BODY_LIMIT: Final = 16 * 1024
_STATUS_TEXT: Final = {
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    410: "Gone",
    413: "Content Too Large",
    500: "Internal Server Error",
}
_FIELDS: Final = frozenset({"token", "score", "label", "comment"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
AppT = TypeVar("AppT")


class Answer(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _error(status: int, reason: str, detail: str) -> Answer:
    body = json.dumps({"error": reason, "detail": detail}).encode()
    return Answer(
        status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body
    )


def _accepted_fields(conversation_json_field: str | None) -> frozenset[str]:
    """The judgment's fields, and the conversation field a body may carry to name
    its session (``conversation_json_field``), which the resolver read."""
    return _FIELDS | {conversation_json_field} if conversation_json_field else _FIELDS


def answer_feedback(method: str, body: bytes | None, fields: frozenset[str] = _FIELDS) -> Answer:
    """The endpoint's answer to a request (``body`` ``None``: over the limit)."""
    if method != "POST":
        reject("feedback", "method")
        answer = _error(405, "method_not_allowed", "send feedback with POST")
        answer.headers.append(("Allow", "POST"))
        return answer
    if body is None:
        reject("feedback", "oversized")
        return _error(413, "too_large", f"the body is over {FEEDBACK_BODY_LIMIT} bytes")
    try:
        judgment = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        judgment = None
    if not isinstance(judgment, dict) or not isinstance(judgment.get("token"), str):
        reject("feedback", "bad_request")
        return _error(400, "bad_request", 'send a JSON object with a "token" string')
    unknown = judgment.keys() - fields
    if unknown:
        reject("feedback", "bad_request")
        return _error(400, "bad_request", f"unknown field {sorted(unknown)[0]!r}")
    try:
        record_feedback(
            judgment["token"],
            score=judgment.get("score"),
            label=judgment.get("label"),
            comment=judgment.get("comment"),
        )
    except FeedbackRefused as refused:  # counted by record_feedback
        return _error(410 if refused.reason == "expired" else 403, refused.reason, str(refused))
    except ValueError as bad:
        reject("feedback", "bad_request")
        return _error(400, "bad_request", str(bad))
    except Exception:
        internal_error("recording feedback")
        return _error(500, "internal_error", "the feedback could not be recorded")
    return Answer(204, [("Cache-Control", "no-store")], b"")


class _FeedbackRoute(Generic[AppT]):
    """What both adapters' routes hold: the app, the middleware's tokens, and where
    and with which fields the endpoint takes a judgment."""

    def __init__(self, app: AppT, tokens: FeedbackTokens, config: SessionConfig) -> None:
        self.app = app
        self.tokens = tokens
        self.path = config.feedback_path
        self.fields = _accepted_fields(config.conversation_json_field)


class AsgiFeedbackRoute(_FeedbackRoute[ASGIApp]):
    """The app, run where :func:`record_feedback` checks tokens with this middleware's
    keys, and ``POST {path}`` answered by the feedback endpoint."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serving = serve_feedback(self.tokens)
        try:
            await self._serve(scope, receive, send)
        finally:
            end_feedback(serving)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope.get("method", "GET"))
        if scope["type"] != "http" or scope["path"] != self.path or method == "OPTIONS":
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_asgi_body(receive) if method == "POST" else b""
        except _ClientLeft:
            return  # a body cut short records nothing, and nobody waits for an answer
        status, headers, content = answer_feedback(method, body, self.fields)
        headers.append(("Content-Length", str(len(content))))
        if method == "HEAD":  # the length of the answer a GET would get, and no body
            content = b""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": content})


class _ClientLeft(Exception):
    """The client left before its whole body arrived."""


async def _read_asgi_body(receive: Receive) -> bytes | None:
    """The request body, or ``None`` once it passes the limit (read no further);
    :class:`_ClientLeft` when the client leaves before the end of it."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientLeft
        body += bytes(message.get("body", b""))
        if len(body) > FEEDBACK_BODY_LIMIT:
            return None
        if not message.get("more_body", False):
            return body


class WsgiFeedbackRoute(_FeedbackRoute[WSGIApplication]):
    """The WSGI app, run where :func:`record_feedback` checks tokens with this
    middleware's keys, and ``POST {path}`` answered by the feedback endpoint."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        serving = serve_feedback(self.tokens)
        try:
            return self._serve(environ, start_response)
        finally:
            end_feedback(serving)

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if environ.get("PATH_INFO") != self.path or method == "OPTIONS":
            return self.app(environ, start_response)
        body: bytes | None = b""
        answer = None
        if method == "POST":
            length = _content_length(environ)
            # A body of unknown length (chunked) is not read: it could block on a slow client.
            if length is not None and length > FEEDBACK_BODY_LIMIT:
                body = None
            elif length is not None:
                body = environ["wsgi.input"].read(length)
                if len(body) < length:  # the client left before the end of its body
                    reject("feedback", "bad_request")
                    answer = _error(400, "bad_request", "the body ended before its length")
        status, headers, content = answer or answer_feedback(method, body, self.fields)
        headers.append(("Content-Length", str(len(content))))
        start_response(f"{status} {_STATUS_TEXT[status]}", headers)
        # A HEAD answer has no body: a server that sends one anyway (waitress) would
        # put it in front of the next response on the connection.
        return [] if method == "HEAD" else [content]


def _content_length(environ: WSGIEnvironment) -> int | None:
    """The request's ``Content-Length``, if it is a plain ASCII number (``"²"`` is
    a digit to ``str.isdigit()``, not to ``int()``)."""
    length = environ.get("CONTENT_LENGTH") or ""
    return int(length) if length.isascii() and length.isdigit() else None


def with_feedback_endpoint(
    app: ASGIApp, tokens: FeedbackTokens | None, config: SessionConfig
) -> ASGIApp:
    """``app`` as it runs bound: as is, unless the middleware issues feedback ``tokens``."""
    return app if tokens is None else AsgiFeedbackRoute(app, tokens, config)


def with_feedback_endpoint_wsgi(
    app: WSGIApplication, tokens: FeedbackTokens | None, config: SessionConfig
) -> WSGIApplication:
    """``app`` as it runs bound: as is, unless the middleware issues feedback ``tokens``."""
    return app if tokens is None else WsgiFeedbackRoute(app, tokens, config)
