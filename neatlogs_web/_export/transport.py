"""What a receiver's answer may cost the app: a few KiB, and no more time than the request has.

An OTLP receiver answers an export with a status and a few bytes. A hostile
or broken one can answer with a gzip bomb, a stream that never ends, or one
byte a second; ``requests`` would inflate and keep all of it, and its
timeouts bound each wait on the socket, not the whole answer. This transport
adapter asks for an answer as is, reads at most ``ANSWER_LIMIT`` bytes of its
body as sent (never inflated), and shuts the connection's socket down when
the request's time is up, which ends a read blocked on it, in the headers or
the body. How much time a request has, and what its ending means, is a
``RequestWatch``'s to say. Public interfaces only: a ``requests`` transport
adapter with ``stream=True``, and the connection class of the pool it hands out.
"""

from __future__ import annotations

import contextlib
import functools
import io
import socket
import threading
from http.client import HTTPException
from typing import Any, Final, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

#: Bytes of an answer's body kept: OTLP answers take a few, an error's reason a few hundred.
ANSWER_LIMIT: Final = 16 * 1024

RequestTimeout = float | tuple[float | None, float | None] | None


class AnswerCutOff(requests.ReadTimeout):
    """The receiver had not finished its status line and headers when time was up."""


def seconds_of(timeout: RequestTimeout) -> float | None:
    """A request's whole time: a ``(connect, read)`` pair is the two together."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return None if connect is None or read is None else connect + read
    return timeout


class _Cutoff:
    """Shuts a request's socket down once its time is up.

    The timer starts before the request leaves; the socket is handed over as
    the connection starts reading the answer (``_CutOffConnection``).
    """

    def __init__(self, seconds: float | None) -> None:
        self._lock = threading.Lock()
        self._socket: Any = None
        self._over = False
        self.fired = False
        self._timer = None if seconds is None else threading.Timer(seconds, self._fire)
        if self._timer is not None:
            self._timer.daemon = True

    def watch(self, sock: Any) -> None:
        with self._lock:
            self._socket = sock
            fired = self.fired
        if fired:
            _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.fired = True
            sock = self._socket
        if sock is not None:
            _shut(sock)

    def __enter__(self) -> _Cutoff:
        _in_flight.cutoff = self
        if self._timer is not None:
            try:
                self._timer.start()
            except RuntimeError:  # no new threads this late in interpreter shutdown
                self._timer = None
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._over = True
        if self._timer is not None:
            self._timer.cancel()
        _in_flight.cutoff = None


def _shut(sock: Any) -> None:
    """End every read blocked on ``sock`` (closing it would not wake them)."""
    shutdown = getattr(sock, "shutdown", None)
    if shutdown is None:
        return
    with contextlib.suppress(OSError):  # already closed
        shutdown(socket.SHUT_RDWR)


class _InFlight(threading.local):
    """Per thread: the cutoff of the request it is sending, if any."""

    cutoff: _Cutoff | None = None


_in_flight = _InFlight()


class _CutOffConnection(HTTPConnection):
    """Mixed into a pool's connection class: hands its socket to the request's cutoff."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        cutoff = _in_flight.cutoff
        if cutoff is not None and self.sock is not None:
            cutoff.watch(self.sock)
        return super().getresponse(*args, **kwargs)


@functools.cache
def _cut_off_class(base: type[Any]) -> type[Any]:
    return type(f"CutOff{base.__name__}", (_CutOffConnection, base), {})


def _cutting_off(pool: HTTPConnectionPool) -> HTTPConnectionPool:
    if not issubclass(pool.ConnectionCls, _CutOffConnection):
        pool.ConnectionCls = _cut_off_class(pool.ConnectionCls)
    return pool


class RequestWatch(Protocol):
    """Who gives each request its time, and hears how it ended."""

    def fit(self, timeout: RequestTimeout) -> RequestTimeout:
        """The time this request may take; raises if none is left (it never leaves)."""

    def failed(self, error: requests.RequestException, timeout: RequestTimeout) -> None:
        """The request raised ``error`` (``fit`` included), given ``timeout``."""

    def answered(self, response: requests.Response, cut_short: str | None) -> None:
        """The receiver answered; ``cut_short`` says why its body was not read to the end."""


class BoundedAdapter(HTTPAdapter):
    """The standard transport adapter, bounding what each answer may cost.

    ``watch`` gives each request its time and hears how it ended.
    """

    def __init__(self, watch: RequestWatch) -> None:
        super().__init__()
        self._watch = watch

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> HTTPConnectionPool:
        return _cutting_off(super().get_connection_with_tls_context(*args, **kwargs))

    def get_connection(self, *args: Any, **kwargs: Any) -> HTTPConnectionPool:
        # What requests before 2.32.2 asks for instead.
        return _cutting_off(super().get_connection(*args, **kwargs))

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: RequestTimeout = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        watch = self._watch
        try:
            timeout = watch.fit(timeout)
            response, cut_short = self._send_bounded(request, timeout, verify, cert, proxies)
        except requests.RequestException as error:
            watch.failed(error, timeout)
            raise
        watch.answered(response, cut_short)
        return response

    def _send_bounded(
        self,
        request: requests.PreparedRequest,
        timeout: RequestTimeout,
        verify: bool | str,
        cert: str | tuple[str, str] | None,
        proxies: dict[str, str] | None,
    ) -> tuple[requests.Response, str | None]:
        """The response, its body cut to ``ANSWER_LIMIT``, and why it was cut if it was.

        Raises ``AnswerCutOff`` when time ran out before the headers were in.
        """
        # A compressed answer would be inflated by whoever reads it: ask for none,
        # and never inflate one that comes anyway.
        request.headers["Accept-Encoding"] = "identity"
        seconds = seconds_of(timeout)
        with _Cutoff(seconds) as cutoff:
            try:
                response = super().send(request, True, timeout, verify, cert, proxies)
            except requests.RequestException as error:
                if cutoff.fired:
                    raise AnswerCutOff(
                        f"no complete answer within {seconds:.2g} s", request=request
                    ) from error
                raise
            why: str | None
            try:
                body = response.raw.read(ANSWER_LIMIT + 1, decode_content=False)
            except (OSError, HTTPException, urllib3.exceptions.HTTPError):
                body, why = b"", "broke off"
            else:
                why = f"was longer than {ANSWER_LIMIT // 1024} KiB" if body[ANSWER_LIMIT:] else None
            if cutoff.fired:  # what was read may look whole: the socket was shut under it
                why = f"had not ended after {seconds:.2g} s"
        if why is None:
            response.raw.release_conn()  # read to its end: the connection can serve again
        else:
            response.close()  # the rest is never read: nor is the connection reused
        response.raw = io.BytesIO(body[:ANSWER_LIMIT])
        return response, why
