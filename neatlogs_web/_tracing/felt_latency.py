"""What the person waited for: when the answer started to appear, and when it ended.

A span's duration is the server's view of its own work; the person sees
something else: the request arrives, the response starts, the first words
of the answer appear (the first non-empty body chunk: with a streamed
answer, long before the last), and the answer ends. The adapters note
these moments as the response is handed to the server
(:class:`ResponseTimes`), and once the answer is out (its last part handed
over, or the request over without it) the figures go on the request's
latest turn, in seconds from the request's arrival:

- ``neatlogs.response.time_to_first_chunk``: to the first non-empty body chunk;
- ``neatlogs.response.time_to_start``: to the response's start (status and headers);
- ``neatlogs.response.duration``: to the last chunk;
- ``neatlogs.response.complete``: ``False`` when the answer never ended (the
  client left, or the app failed mid-stream).

A turn's block usually ends before its answer is out (the handler returns
the response, or the streamed body's generator ends before the last
chunk goes out), so the request holds the latest turn's span open until
then and ends it at the moment its block ended
(``RequestTrace.hold_turn``): the figures land on the turn itself, and no
span is added. The framework's request span that carries the turn (the
trace's root, which Phoenix and the collector read) gets them too, before
an instrumentation outside ours ends it with the answer's last part. A turn
that ends after the answer is out (a background task's) is not held. A
request without a turn records nothing: it is no conversation.

On a WebSocket each message is a turn: the person waits from the message's
arrival to the first reply, and to the last reply of that turn
(:class:`MessageWait`). The app receiving a message notes when in the
receiving code's context, so a task started to handle it carries that moment
(where the framework receives in a task of its own, the connection's latest
message is the one). A reply counts for the turn whose block the sending code
runs in, so turns handled side by side on one connection, and messages sent
outside any turn (a heartbeat), keep apart. Each arrival is one turn's: a
turn that answers no message (a greeting, a push) carries no figures. The
figures go on the turn as its block ends: send the answer inside it.
``complete`` says whether a reply went out and the turn ended without an
error; ``time_to_start`` has no meaning there.

The names are ours, not the GenAI semantic conventions'
``gen_ai.response.time_to_first_chunk``: that one is a model's answer as its
client saw it, on the model call's span, and backends that keep only GenAI
spans (Langfuse's default filter) would take a turn carrying it for a model
call. A model call's own figure, where an instrumentation records it, stays
on the model call's span.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any, Final

__all__ = [
    "COMPLETE_KEY",
    "DURATION_KEY",
    "TIME_TO_FIRST_CHUNK_KEY",
    "TIME_TO_START_KEY",
    "MessageWait",
    "ResponseTimes",
]

TIME_TO_FIRST_CHUNK_KEY: Final = "neatlogs.response.time_to_first_chunk"
TIME_TO_START_KEY: Final = "neatlogs.response.time_to_start"
DURATION_KEY: Final = "neatlogs.response.duration"
COMPLETE_KEY: Final = "neatlogs.response.complete"

#: When the WebSocket message the code in effect handles arrived.
_message_arrived: Final[ContextVar[int | None]] = ContextVar(
    "neatlogs_web_message_arrived", default=None
)
#: The wait of the WebSocket message turn whose block the code in effect runs in.
_message_wait: Final[ContextVar[MessageWait | None]] = ContextVar(
    "neatlogs_web_message_wait", default=None
)


class ResponseTimes:
    """Moments of one response, noted by the adapter as each part of it goes out.
    In ``time.monotonic_ns()``: the figures are intervals, which the wall clock's
    adjustments would stretch or shrink."""

    __slots__ = ("arrived", "ended", "first_chunk", "last_message", "started")

    def __init__(self) -> None:
        self.arrived = time.monotonic_ns()
        #: The status and headers went out.
        self.started: int | None = None
        #: The first non-empty part of the body went out: the first words.
        self.first_chunk: int | None = None
        #: The last part of the body went out: the answer is complete.
        self.ended: int | None = None
        #: A WebSocket's latest message arrived, in whichever task received it.
        self.last_message: int | None = None

    def note_sending(self, message: Mapping[str, Any]) -> bool:
        """An ASGI response message is handed to the server: its moment, by what it
        was. Whether it is the answer's last part."""
        kind = message["type"]
        if kind == "http.response.body":
            now = time.monotonic_ns()
            if self.first_chunk is None and message.get("body"):
                self.first_chunk = now
            if not message.get("more_body", False):
                self.ended = now
                return True
        elif kind == "http.response.start":
            self.started = time.monotonic_ns()
        elif kind == "websocket.send":
            wait = _message_wait.get()
            if wait is not None:  # a reply, sent inside a message's turn
                wait.note_reply()
        elif kind == "http.response.pathsend":  # a whole file, sent by the server
            self.first_chunk = self.ended = time.monotonic_ns()
            return True
        return False

    def note_receiving(self, message: Mapping[str, Any]) -> None:
        """An ASGI message came from the server: a WebSocket message starts a wait,
        for the replies to it, in the receiving code's context (and the connection's)."""
        if message["type"] == "websocket.receive":
            self.last_message = time.monotonic_ns()
            _message_arrived.set(self.last_message)

    def note_words_written(self) -> None:
        """The server wrote the first non-empty part of a WSGI body (the status
        and headers went out just before it, PEP 3333)."""
        if self.first_chunk is None:
            self.first_chunk = time.monotonic_ns()
            self.started = self.started or self.first_chunk

    def note_body_complete(self) -> None:
        """The server wrote all of a WSGI body and closed it."""
        self.ended = time.monotonic_ns()
        self.started = self.started or self.ended

    def attributes(self) -> dict[str, float | bool]:
        """The figures, in seconds from arrival, for what happened."""
        return _figures(self.arrived, self.started, self.first_chunk, self.ended)


class MessageWait:
    """One WebSocket message's wait: from its arrival to the first and the last
    reply sent while its turn's block ran. In effect from :meth:`begin` to :meth:`end`."""

    __slots__ = ("arrived", "first_reply", "last_reply", "token")

    def __init__(self, arrived: int | None) -> None:
        #: When the message arrived; ``None`` for a turn that answers none (a push).
        self.arrived = arrived
        self.first_reply: int | None = None
        self.last_reply: int | None = None
        self.token: Token[MessageWait | None] | None = None

    @classmethod
    def begin(cls, connection: ResponseTimes) -> MessageWait:
        """The wait of the message the code in effect handles, made current: the one
        its context received, else the connection's latest (a framework that receives
        in a task of its own, as Django Channels does). Each arrival is one turn's: a
        turn that answers no message (a greeting, a push) waits for nothing."""
        arrived = _message_arrived.get()
        if arrived is not None:
            _message_arrived.set(None)
            if connection.last_message == arrived:
                connection.last_message = None
        else:
            arrived, connection.last_message = connection.last_message, None
        wait = cls(arrived)
        wait.token = _message_wait.set(wait)
        return wait

    def note_reply(self) -> None:
        self.last_reply = time.monotonic_ns()
        self.first_reply = self.first_reply or self.last_reply

    def end(self, *, failed: bool) -> dict[str, float | bool]:
        """No longer current; the figures, not complete when the turn ``failed``."""
        # Ended in another context (a generator closed elsewhere): nothing to undo.
        with contextlib.suppress(ValueError):
            if self.token is not None:
                _message_wait.reset(self.token)
        if self.arrived is None:
            return {}
        figures = _figures(self.arrived, None, self.first_reply, self.last_reply)
        figures[COMPLETE_KEY] = figures[COMPLETE_KEY] and not failed
        return figures


def _figures(
    arrived: int, started: int | None, first_chunk: int | None, ended: int | None
) -> dict[str, float | bool]:
    """The figures, in seconds from ``arrived``, for the moments that happened."""
    figures: dict[str, float | bool] = {COMPLETE_KEY: ended is not None}
    for key, moment in (
        (TIME_TO_START_KEY, started),
        (TIME_TO_FIRST_CHUNK_KEY, first_chunk),
        (DURATION_KEY, ended),
    ):
        if moment is not None:
            figures[key] = (moment - arrived) / 1e9
    return figures
