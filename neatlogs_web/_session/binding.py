"""The request-session ContextVar and the helpers that carry it.

A server handles many users at once, so the session a span belongs to cannot
be process-global: it lives in a ``ContextVar`` that the middleware sets per
request and that asyncio tasks, ``run_in_threadpool`` and ``copy_context()``
carry along. ``trace()`` and the span processor read it at span start.
This module is the bottom layer: it imports nothing of ours above the id rules.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, ParamSpec, TypeVar

from neatlogs_web._session.ids import ID_CHARSET, MAX_ID_LENGTH, is_valid_session_id

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "SessionBinding",
    "current_end_user_id",
    "current_session_id",
    "session",
    "with_current_session",
]


@dataclass(slots=True, eq=False, repr=False)
class SessionBinding:
    """The session in effect for a unit of work (a request, a ``session()`` block).

    It is mutable on purpose: a handler that learns the conversation id only
    after routing rebinds the request's one binding object, and every task,
    thread or streamed body already holding it sees the change.
    """

    session_id: str
    end_user_id: str | None = None
    #: The session an idle timeout ended, on the first trace of the new one.
    previous_session_id: str | None = None
    #: A conversation id the request named, bound once the app confirms it.
    pending_conversation_id: str | None = None
    #: ``conversation_binding="when_confirmed"``: conversations wait for the app.
    confirms_conversations: bool = False

    def __repr__(self) -> str:
        return f"SessionBinding(session_id={self.session_id!r})"


_binding: Final[contextvars.ContextVar[SessionBinding | None]] = contextvars.ContextVar(
    "neatlogs_web_session", default=None
)

# The thread the garbage collector is running on, while it runs. Objects a
# request abandoned (a generator left suspended when its client went away)
# are finalized by the collector inside whatever code allocated last, often
# another user's request: their ``finally:`` belongs to no request, so no
# request binding is in effect there. A plain global, not a ContextVar: the
# collector may run in the middle of a ContextVar operation.
_collecting_on: int | None = None


def _note_collection(phase: str, info: dict[str, int]) -> None:
    global _collecting_on
    _collecting_on = threading.get_ident() if phase == "start" else None


gc.callbacks.append(_note_collection)


def collecting_garbage() -> bool:
    """Whether this thread is inside a garbage collection, finalizing objects
    that no running request owns any more."""
    return _collecting_on is not None and _collecting_on == threading.get_ident()


# Set by init(auto_session=True | session_id=...): the fallback for work that no
# request or session() block covers, as in a script.
_default_binding: SessionBinding | None = None


def set_default_session(session_id: str | None) -> None:
    """Install (or clear) the process default session; called by ``init()``."""
    global _default_binding
    _default_binding = None if session_id is None else SessionBinding(session_id)


def current_binding() -> SessionBinding | None:
    """The innermost binding in effect, falling back to the process default."""
    return current_request_binding() or _default_binding


def current_request_binding() -> SessionBinding | None:
    """The binding of the request or block in effect, ignoring the default; none
    while the garbage collector finalizes objects no request owns any more."""
    if collecting_garbage():
        return None
    return _binding.get()


def current_session_id() -> str | None:
    """The session id ``trace()`` would stamp on a span started now, or ``None``."""
    binding = current_binding()
    return None if binding is None else binding.session_id


def current_end_user_id() -> str | None:
    """The end-user id known for the current request or block, or ``None``."""
    binding = current_request_binding()
    return None if binding is None else binding.end_user_id


def bind(binding: SessionBinding | None) -> contextvars.Token[SessionBinding | None]:
    """Bind ``binding`` (or "no session") in the current context; undo with :func:`unbind`."""
    return _binding.set(binding)


def unbind(token: contextvars.Token[SessionBinding | None]) -> None:
    """Restore what was bound before ``token``.

    A token created in another context (a coroutine closed by the garbage
    collector, a callback a server runs on its own thread) cannot be reset
    there; the context it belongs to dies with its task, so nothing leaks and
    we do not raise into the server.
    """
    try:
        _binding.reset(token)
    except ValueError:
        return  # another context's token: nothing of this context to restore


def check_id(what: str, value: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``value`` is a valid id."""
    if not isinstance(value, str) or not is_valid_session_id(value):
        length = len(value) if isinstance(value, str) else type(value).__name__
        raise ValueError(
            f"{what} takes 1-{MAX_ID_LENGTH} characters of {ID_CHARSET}, got {length!r} "
            "that are not: hash or encode the id first"
        )


@contextmanager
def session(session_id: str, *, end_user_id: str | None = None) -> Iterator[SessionBinding]:
    """Bind ``session_id`` for the block: every span started inside carries it.

    Overrides the request's session and the ``init()`` default, and restores
    them on exit, also on exceptions. Raises ``ValueError`` for an id that is
    not 1-128 characters of ``[A-Za-z0-9._:@/+=-]``.
    """
    check_id("session()", session_id)
    if end_user_id is not None:
        check_id("session() end_user_id", end_user_id)
    binding = SessionBinding(session_id, end_user_id)
    token = bind(binding)
    try:
        yield binding
    finally:
        unbind(token)


def with_current_session(fn: Callable[P, R]) -> Callable[P, R]:
    """Return ``fn`` bound to a copy of the current context.

    Threads started by hand (``threading.Thread``, ``executor.submit``) begin
    with an empty context; wrap the callable here, in the request, and it runs
    with the request's session and active span wherever it is called::

        executor.submit(neatlogs_web.with_current_session(work), item)
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time: copy per call so
        # the wrapped callable may run concurrently (executor.map).
        return ctx.copy().run(fn, *args, **kwargs)

    return run
