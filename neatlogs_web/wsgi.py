"""WSGI middleware: one session per request, through the response iterable.

A WSGI app returns an iterable that the server may consume after the app
call returned, even on another thread. So the session is bound around the
app call, and bound again around each ``next()`` and around ``close()``
(as sentry-sdk does), never held across a ``yield``: a reused worker thread
never inherits a previous request's session.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, Unpack

from neatlogs_web import identity
from neatlogs_web._request import needs_response_headers, open_binding, response_headers
from neatlogs_web.context import SessionBinding, bind, unbind
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

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        policy = self.policy
        if _ENVIRON_BINDING_KEY in environ or policy.is_excluded(path):
            return self.app(environ, start_response)

        inputs = RequestInputs(path, environ.get("QUERY_STRING", ""))
        if policy.wants_cookie:
            inputs.cookie = environ.get("HTTP_COOKIE")
        if self._session_key is not None:
            inputs.session_header = environ.get(self._session_key)
        if self._conversation_key is not None:
            inputs.conversation_header = environ.get(self._conversation_key)
        if policy.wants_baggage:
            inputs.baggage = environ.get("HTTP_BAGGAGE")
        https = environ.get("wsgi.url_scheme") == "https"

        resolution = policy.resolve(inputs, https=https)
        if isinstance(resolution, NeedsBody):
            if policy.needs_body(environ.get("CONTENT_TYPE"), environ.get("REQUEST_METHOD", "")):
                self._read_json_field(inputs, environ)
            resolution = policy.resolve(inputs, https=https, resume_at=resolution.resume_at)
        assert isinstance(resolution, Resolution)

        binding = open_binding(resolution, self.end_user, environ)
        environ[_ENVIRON_BINDING_KEY] = binding
        environ[ENVIRON_KEY] = resolution.session_id
        if needs_response_headers(policy, resolution):
            start_response = self._add_session_headers(start_response, resolution, binding)

        token = bind(binding)
        try:
            result = self.app(environ, start_response)
        finally:
            unbind(token)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            # Servers send these with sendfile(); wrapping would defeat that.
            return result
        return _BoundResponse(result, binding)

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
    """The app's response iterable, with the session bound around each step."""

    __slots__ = ("_binding", "_iterable", "_iterator")

    def __init__(self, iterable: Iterable[bytes], binding: SessionBinding) -> None:
        self._iterable = iterable
        self._binding = binding
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        token = bind(self._binding)
        try:
            if self._iterator is None:
                self._iterator = iter(self._iterable)
            return next(self._iterator)
        finally:
            unbind(token)

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is None:
            return
        token = bind(self._binding)
        try:
            close()
        finally:
            unbind(token)
