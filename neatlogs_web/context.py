"""The request-session ContextVar and the helpers that carry it.

A server handles many users at once, so the session a span belongs to cannot
be process-global: it lives in a ``ContextVar`` that the middleware sets per
request and that asyncio tasks, ``run_in_threadpool`` and ``copy_context()``
carry along. ``trace()`` and the span processor read it at span start.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, ParamSpec, TypeVar

from neatlogs_web import identity

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "SessionBinding",
    "current_binding",
    "current_end_user_id",
    "current_request_binding",
    "current_session_id",
    "session",
    "with_current_session",
]


class SessionBinding:
    """The session in effect for a unit of work (a request, a ``session()`` block).

    It is mutable on purpose: a handler that learns the conversation id only
    after routing rebinds the request's one binding object, and every task,
    thread or streamed body already holding it sees the change.
    """

    __slots__ = (
        "end_user_id",
        "last_trace_id",
        "previous_session_id",
        "request_span",
        "session_id",
    )

    def __init__(
        self,
        session_id: str,
        end_user_id: str | None = None,
        previous_session_id: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.end_user_id = end_user_id
        self.previous_session_id = previous_session_id
        #: The framework's request span stamped at binding, re-stamped on rebind.
        self.request_span: object = None
        #: The trace id of the latest root ``trace()`` started under this binding.
        self.last_trace_id: int | None = None

    def __repr__(self) -> str:
        return f"SessionBinding(session_id={self.session_id!r})"


_binding: Final[contextvars.ContextVar[SessionBinding | None]] = contextvars.ContextVar(
    "neatlogs_web_session", default=None
)

# Set by init(auto_session=True | session_id=...): the fallback for work that no
# request or session() block covers, as in a script.
_default_binding: SessionBinding | None = None


def set_default_session(session_id: str | None) -> None:
    """Install (or clear) the process default session; called by ``init()``."""
    global _default_binding
    _default_binding = None if session_id is None else SessionBinding(session_id)


def current_binding() -> SessionBinding | None:
    """The innermost binding in effect, falling back to the process default."""
    return _binding.get() or _default_binding


def current_request_binding() -> SessionBinding | None:
    """The binding of the request or block in effect, ignoring the default."""
    return _binding.get()


def current_session_id() -> str | None:
    """The session id ``trace()`` would stamp on a span started now, or ``None``."""
    binding = _binding.get() or _default_binding
    return None if binding is None else binding.session_id


def current_end_user_id() -> str | None:
    """The end-user id known for the current request or block, or ``None``."""
    binding = _binding.get()
    return None if binding is None else binding.end_user_id


#: Bind a ``SessionBinding`` in the current context; pair with :func:`unbind`.
#: The ContextVar's own method, so binding a request costs no extra call.
bind: Final = _binding.set


def unbind(token: contextvars.Token[SessionBinding | None]) -> None:
    """Restore what was bound before ``token``.

    A token created in another context (a generator resumed elsewhere, a
    callback run by a server on its own thread) cannot be reset there; the
    context it belongs to dies with its task, so nothing leaks and we do not
    raise into the server.
    """
    try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
        _binding.reset(token)
    except ValueError:
        pass


#: Undo a :func:`bind` made earlier in the same synchronous frame, with no
#: ``yield`` or ``await`` between: that is always the same context, so the
#: ContextVar's own reset cannot fail and saves :func:`unbind`'s extra call.
reset_binding: Final = _binding.reset


@contextmanager
def session(session_id: str, *, end_user_id: str | None = None) -> Iterator[SessionBinding]:
    """Bind ``session_id`` for the block: every span started inside carries it.

    Overrides the request's session and the ``init()`` default, and restores
    them on exit, also on exceptions. Raises ``ValueError`` for an id that is
    not 1-128 characters of ``[A-Za-z0-9._:@/+=-]``.
    """
    if not identity.is_valid_session_id(session_id):
        raise ValueError(
            f"session() takes 1-{identity.MAX_ID_LENGTH} characters of "
            f"[A-Za-z0-9._:@/+=-], got {len(session_id)} characters that are not: "
            "hash or encode the id first"
        )
    if end_user_id is not None and not identity.is_valid_session_id(end_user_id):
        raise ValueError("session() end_user_id has the same charset and length rules as ids")
    binding = SessionBinding(session_id, end_user_id)
    token = _binding.set(binding)
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
