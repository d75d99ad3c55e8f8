"""WSGI middleware: one session per request, through the response iterable.

A WSGI app returns an iterable that the server may consume after the app
call returned, even on another thread. So the session is bound around the
app call, and bound again around each ``next()`` and around ``close()``
(as sentry-sdk does), never held across a ``yield``: a reused worker thread
never inherits a previous request's session. What to bind is decided by the
shared resolver; this module only reads the environ and changes the
response, the WSGI way.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, Unpack

from neatlogs_web._session.binding import SessionBinding, bind, unbind
from neatlogs_web._session.counters import reject
from neatlogs_web._session.feedback_tokens import FeedbackTokens, end_feedback, serve_feedback
from neatlogs_web._session.options import SessionConfig, SessionOptions, check_end_user
from neatlogs_web._session.resolution import NeedsBody, Resolution
from neatlogs_web._session.signing import SecretKeys
from neatlogs_web._session.sources import RequestInputs
from neatlogs_web._tracing.felt_latency import ResponseTimes
from neatlogs_web._tracing.request_trace import (
    RequestTrace,
    end_request,
    make_current,
    restore_current,
    start_request,
)
from neatlogs_web._web.feedback_endpoint import with_feedback_endpoint_wsgi
from neatlogs_web._web.flow import RequestFlow

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
    id. The other options are :class:`neatlogs_web._session.options.SessionConfig`'s
    (see the README's table).
    """

    def __init__(
        self,
        app: WSGIApplication,
        secret_key: SecretKeys | None = None,
        *,
        end_user: Callable[[WSGIEnvironment], str | None] | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.app = app
        self.end_user = end_user
        check_end_user(end_user)
        config = SessionConfig.from_options(type(self).__name__, secret_key, options)
        self.flow = flow = RequestFlow[WSGIEnvironment](config, end_user)
        self.resolver = resolver = flow.resolver
        #: What runs bound: the app, behind the feedback endpoint when there is one.
        self._bound_app = with_feedback_endpoint_wsgi(
            app, resolver.response.feedback_tokens, config
        )
        # Environ key -> the RequestInputs field it fills, for the sources in use.
        self._wanted = [(_environ_key(name), field) for name, field in flow.header_fields()]
        # Environ keys whose presence means the cookie does not decide alone (None: never).
        self._before_cookie = (
            tuple(_environ_key(name) for name in resolver.headers_before_cookie)
            if resolver.recalls_cookie
            else None
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _ENVIRON_BINDING_KEY in environ:  # applied twice: the outer one bound it
            return self.app(environ, start_response)

        # A request starts clean, whatever the worker thread or greenlet ran
        # before it (see _web.clean_start): another request's spans are left
        # behind, and it binds its own value, even "no session".
        times = ResponseTimes()
        trace = start_request(times)
        try:
            binding: SessionBinding | None = None
            if not self._binds_nothing(environ):
                resolution, binding = self._resolve(environ, trace)
                environ[ENVIRON_KEY] = resolution.session_id
                if resolution.changes_response:
                    start_response = self._add_session_headers(start_response, resolution, trace)
            environ[_ENVIRON_BINDING_KEY] = binding
            token = bind(binding)
            try:
                result = self._bound_app(environ, start_response)
            finally:
                unbind(token)
        finally:
            end_request(trace)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            # Servers send these with sendfile(); wrapping would defeat that.
            trace.end_held_turn()
            return result
        if isinstance(result, list | tuple) and trace.held_turn is None:
            # No close(), no code left to run later and no turn waiting for the answer.
            return result
        feedback_tokens = self.resolver.response.feedback_tokens
        return _BoundResponse(result, binding, _Answer(self.flow, trace, times), feedback_tokens)

    def _binds_nothing(self, environ: WSGIEnvironment) -> bool:
        """Excluded paths and CORS preflights: no session, no cookie, nothing echoed."""
        resolver = self.resolver
        return (
            resolver.excludes_paths and resolver.is_excluded(environ.get("PATH_INFO", ""))
        ) or _is_preflight(environ)

    def _resolve(
        self, environ: WSGIEnvironment, trace: RequestTrace
    ) -> tuple[Resolution, SessionBinding]:
        """The request's session and its binding (a JSON body read for it is put back)."""
        flow = self.flow
        try:
            resolution = self._recall(environ)  # a returning user, usually
            if resolution is None:
                inputs = self._request_inputs(environ)
                https = environ.get("wsgi.url_scheme") == "https"
                resolved = self.resolver.resolve(inputs, https=https)
                if isinstance(resolved, NeedsBody):
                    self._read_json_field(environ, inputs)
                    resolved = self.resolver.resume(inputs, resolved, https=https)
                resolution = resolved
            binding = flow.open(resolution, environ, trace, websocket=False)
        except Exception:
            where = "resolving a WSGI request's session"
            resolution, binding = flow.fallback(where, trace, websocket=False)
        return resolution, binding

    def _recall(self, environ: WSGIEnvironment) -> Resolution | None:
        """The remembered decision for a browser whose cookie alone decides."""
        cookie = environ.get("HTTP_COOKIE")
        if cookie is None or self._before_cookie is None:
            return None  # no cookie, or it never decides alone
        for key in self._before_cookie:
            if key in environ:  # a source read before the cookie decides
                return None
        return self.resolver.recall(cookie)

    def _request_inputs(self, environ: WSGIEnvironment) -> RequestInputs:
        inputs = RequestInputs(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
        for key, field in self._wanted:
            value = environ.get(key)
            if value is not None:
                setattr(inputs, field, value)
        return inputs

    def _add_session_headers(
        self, start_response: StartResponse, resolution: Resolution, trace: RequestTrace
    ) -> StartResponse:
        flow = self.flow

        def start_response_with_session(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            extra = flow.response_headers(resolution, trace)
            return start_response(status, [*headers, *extra], exc_info)

        return start_response_with_session

    def _read_json_field(self, environ: WSGIEnvironment, inputs: RequestInputs) -> None:
        """Read a small body an app might parse as JSON, whatever the method, for
        its conversation field, and put it back for the app."""
        resolver = self.resolver
        length_text = environ.get("CONTENT_LENGTH") or ""
        has_body = bool(length_text) or "HTTP_TRANSFER_ENCODING" in environ
        if not has_body or not resolver.body_may_hold_conversation(
            environ.get("CONTENT_TYPE") or ""
        ):
            resolver.read_json_body(inputs, b"")
            return
        if not length_text.isdigit():
            # Unknown length (chunked): reading could block on a slow client.
            reject("conversation_json", "unknown_length")
            resolver.read_json_body(inputs, None)
            return
        if int(length_text) > resolver.config.json_body_limit:
            reject("conversation_json", "oversized")
            resolver.read_json_body(inputs, None)
            return
        body = environ["wsgi.input"].read(int(length_text))
        environ["wsgi.input"] = io.BytesIO(body)
        resolver.read_json_body(inputs, body)


def _is_preflight(environ: WSGIEnvironment) -> bool:
    """A CORS preflight is the browser asking, not the user acting: it binds
    nothing, sets no cookie and echoes nothing, wherever the CORS layer sits."""
    return (
        environ.get("REQUEST_METHOD") == "OPTIONS"
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
    )


class _Answer:
    """The request a response body answers, and when the server wrote it: a turn
    started in the body joins the request, and the latest turn, held until the
    answer is out, ends then (``_tracing.felt_latency``)."""

    __slots__ = ("done", "flow", "times", "trace")

    def __init__(
        self, flow: RequestFlow[WSGIEnvironment], trace: RequestTrace, times: ResponseTimes
    ) -> None:
        self.flow = flow
        self.trace = trace
        self.times = times
        self.done = False

    def finish(self, *, complete: bool) -> None:
        """The answer is out: all of it was written, or it never will be (the client
        left, the server closed the body early, or nobody read it). Once."""
        if self.done:
            return
        self.done = True
        if complete:
            self.times.note_body_complete()
        self.flow.answer_out(self.trace)


class _BoundResponse:
    """The app's response iterable, with the session and the request bound around
    each step.

    ``close()`` is a method of its own, not a generator's ``finally``: a server
    calls it once the response is complete (PEP 3333), and the app's
    ``close()`` must run then, not inside the last ``next()``. The server
    asking for the next part says the previous one was written; the end of
    the parts, ``close()`` (or the body's end of life) that the answer is out.
    """

    __slots__ = ("_answer", "_binding", "_feedback_tokens", "_iterable")

    def __init__(
        self,
        iterable: Iterable[bytes],
        binding: SessionBinding | None,
        answer: _Answer,
        feedback_tokens: FeedbackTokens | None,
    ) -> None:
        self._iterable = iterable
        self._binding = binding
        self._answer = answer
        #: The middleware's, so that a turn the body opens can name itself (feedback_token()).
        self._feedback_tokens = feedback_tokens

    def __iter__(self) -> Iterator[bytes]:
        # iter() and each next() of the app's iterator run bound; the binding is
        # reset before each yield, so no token lives across one.
        with self._bound():
            iterator = iter(self._iterable)
        words_written = False
        while True:
            with self._bound():
                chunk = next(iterator, None)
            if chunk is None:
                # The server asks for more only once it wrote what it had: all of it.
                self._answer.finish(complete=True)
                return
            yield chunk
            if chunk and not words_written:
                words_written = True  # the server asks for more once it wrote this
                self._answer.times.note_words_written()

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        self._iterable = ()  # a second close() from the server reaches the app once
        try:
            if close is not None:
                with self._bound():
                    close()
        finally:
            self._answer.finish(complete=False)

    def __del__(self) -> None:
        # A body nobody read to the end nor closed (a test client that never reads
        # it): the turn held for its answer still ends, and is exported.
        self._answer.finish(complete=False)

    @contextlib.contextmanager
    def _bound(self) -> Iterator[None]:
        """The request's session, trace and feedback tokens, for one step of its body."""
        binding_token = bind(self._binding)
        trace_token = make_current(self._answer.trace)
        tokens = self._feedback_tokens
        serving = serve_feedback(tokens) if tokens is not None else None
        try:
            yield
        finally:
            if serving is not None:
                end_feedback(serving)
            restore_current(trace_token)
            unbind(binding_token)
