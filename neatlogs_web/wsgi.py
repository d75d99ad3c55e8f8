"""WSGI middleware: one session per request, through the response iterable.

A WSGI app returns an iterable that the server may consume after the app
call returned, even on another thread. So the session is bound around the
app call, and bound again around each ``next()`` and around ``close()``
(as sentry-sdk does), never held across a ``yield``: a reused worker thread
never inherits a previous request's session.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from typing import TYPE_CHECKING, Any, Final, Unpack

from opentelemetry.context import get_current as current_otel_context

from neatlogs_web import identity
from neatlogs_web._request import open_binding, response_headers
from neatlogs_web.context import SessionBinding, bind, reset_binding
from neatlogs_web.identity import NeedsBody, RequestInputs, Resolution, SessionOptions

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
else:
    OptExcInfo = StartResponse = WSGIApplication = WSGIEnvironment = Any

__all__ = ["ENVIRON_KEY", "NeatlogsSessionMiddleware"]

#: Key in the WSGI environ holding the resolved session id.
ENVIRON_KEY: Final = "neatlogs.session_id"
_ENVIRON_BINDING_KEY: Final = "neatlogs_web.binding"


def _environ_key(header_name: str) -> str:
    return "HTTP_" + header_name.upper().replace("-", "_")


class NeatlogsSessionMiddleware:
    """Resolve each request's session and bind it while the app and its body run.

    ``end_user`` is an optional callable from the WSGI environ to an end-user
    id. Other options: see :class:`neatlogs_web.identity.SessionOptions`.
    """

    def __init__(
        self,
        app: WSGIApplication,
        secret_key: str | bytes | list[str | bytes] | None = None,
        *,
        end_user: Callable[[WSGIEnvironment], str | None] | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.app = app
        self.policy = identity.SessionPolicy(secret_key=secret_key, **options)
        self.end_user = end_user
        policy = self.policy
        self._session_key = (
            _environ_key(policy.header_name) if policy.wants_session_header else None
        )
        self._conversation_key = (
            _environ_key(policy.conversation_header_lower)
            if policy.wants_conversation_header and policy.conversation_header_lower
            else None
        )
        self._excluding = bool(policy.exclude_exact or policy.exclude_prefixes)
        self._cookie_alone = policy.cookie_decides_alone
        # A request carrying none of these is decided by its cookie alone.
        self._other_input_keys = frozenset(
            key
            for key in (
                self._session_key,
                self._conversation_key,
                "HTTP_BAGGAGE" if policy.wants_baggage else None,
            )
            if key is not None
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        policy = self.policy
        if _ENVIRON_BINDING_KEY in environ or (
            self._excluding and policy.is_excluded(environ.get("PATH_INFO", ""))
        ):
            return self.app(environ, start_response)

        resolution = None
        if self._cookie_alone:
            # A returning user: the decision for this cookie is usually remembered.
            cookie = environ.get("HTTP_COOKIE")
            if cookie is not None and environ.keys().isdisjoint(self._other_input_keys):
                remembered = policy.remembered_cookies.get(cookie)
                if remembered is not None and remembered[0] <= time.time() <= remembered[1]:
                    resolution = remembered[2]
        if resolution is None:
            resolution = self._resolve(environ)

        if self.end_user is None and not current_otel_context():
            # open_binding()'s common case inline: no end user, no active span to stamp.
            binding = SessionBinding(resolution.session_id, None, resolution.previous_session_id)
        else:
            binding = open_binding(resolution, self.end_user, environ)
        environ[_ENVIRON_BINDING_KEY] = binding
        environ[ENVIRON_KEY] = resolution.session_id
        if (
            resolution.set_cookie is not None
            or resolution.echo_token is not None
            or policy.expose_trace_id
        ):
            start_response = self._add_session_headers(start_response, resolution, binding)

        token = bind(binding)
        try:
            result = self.app(environ, start_response)
        finally:
            reset_binding(token)
        if result.__class__ is list or result.__class__ is tuple:
            # A plain list or tuple has no close() and no code left to run later.
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            # Servers send these with sendfile(); wrapping would defeat that.
            return result
        return _BoundResponse(result, binding)

    def _resolve(self, environ: WSGIEnvironment) -> Resolution:
        """The full resolution, for requests no remembered decision covers."""
        policy = self.policy
        inputs = RequestInputs(
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_COOKIE") if policy.wants_cookie else None,
            environ.get(self._session_key) if self._session_key is not None else None,
            environ.get(self._conversation_key) if self._conversation_key is not None else None,
            environ.get("HTTP_BAGGAGE") if policy.wants_baggage else None,
        )
        https = environ.get("wsgi.url_scheme") == "https"
        resolved = policy.resolve(inputs, https=https)
        if isinstance(resolved, NeedsBody):
            if policy.needs_body(environ.get("CONTENT_TYPE"), environ.get("REQUEST_METHOD", "")):
                self._read_json_field(inputs, environ)
            resolved = policy.resolve(inputs, https=https, resume_at=resolved.resume_at)
        assert isinstance(resolved, Resolution)
        return resolved

    def _add_session_headers(
        self, start_response: StartResponse, resolution: Resolution, binding: SessionBinding
    ) -> StartResponse:
        policy = self.policy

        def start_response_with_session(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            extra = response_headers(policy, resolution, binding)
            return start_response(status, [*headers, *extra], exc_info)

        return start_response_with_session

    def _read_json_field(self, inputs: RequestInputs, environ: WSGIEnvironment) -> None:
        """Read a small body for its JSON field and put it back for the app."""
        length_text = environ.get("CONTENT_LENGTH") or ""
        if not length_text.isdigit():
            # Unknown length (chunked): reading could block on a slow client.
            identity.reject("conversation_json", "unknown_length")
            return
        length = int(length_text)
        if length > self.policy.json_body_limit:
            identity.reject("conversation_json", "oversized")
            return
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        field = self.policy.conversation_json_field
        assert field is not None
        inputs.json_value = identity.parse_json_field(body, field)


class _BoundResponse:
    """The app's response iterable, with the session bound around each step.

    ``close()`` is a method of its own, not a generator's ``finally``: a server
    calls it once the response is complete (PEP 3333), and the app's
    ``close()`` must run then, not inside the last ``next()``.
    """

    __slots__ = ("_binding", "_iterable")

    def __init__(self, iterable: Iterable[bytes], binding: SessionBinding) -> None:
        self._iterable = iterable
        self._binding = binding

    def __iter__(self) -> Iterator[bytes]:
        # A generator: cheaper per chunk than a __next__ method, and the app
        # iterator's exhaustion ends it without raising through our frames.
        # iter() and each next() of the app's iterator run bound; the binding is
        # reset before each yield, so no token lives across one.
        binding = self._binding
        token: Token[SessionBinding | None] | None = bind(binding)
        try:
            for chunk in self._iterable:
                reset_binding(token)  # type: ignore[arg-type]
                token = None
                yield chunk
                token = bind(binding)
        finally:
            if token is not None:
                reset_binding(token)

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is None:
            return
        self._iterable = ()  # a second close() from the server reaches the app once
        token = bind(self._binding)
        try:
            close()
        finally:
            reset_binding(token)
