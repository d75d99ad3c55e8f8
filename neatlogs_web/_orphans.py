"""Abandoned async generators are finalized outside every request.

When a client leaves mid-stream, the response's async generator can be left
suspended at a ``yield``: Starlette's ``BaseHTTPMiddleware`` cancels the send
the body waits in, not the generator, and ``iterate_in_threadpool`` (a
``StreamingResponse`` over a plain iterator) is left the same way on any
stack. When its last reference goes, during some other request (the garbage
collector runs inside whatever code allocates), the event loop's finalizer
hook (asyncio's and uvloop's alike) schedules ``agen.aclose()`` with
``call_soon_threadsafe``, which captures the context current at that moment:
the other request's. The generator's ``finally:`` would then trace into
that user's session, as a child of that user's active span.

The hook is wrapped so it runs in an empty ``contextvars.Context``: the
``aclose()`` task starts with no session bound and no active span, so spans
in that ``finally:`` carry no session rather than someone else's. Restoring
the generator's own request instead would mean remembering a context per
generator at first iteration, and CPython clears weak references before the
finalizer runs, so there is no cheap, leak-free place to keep it.

Hooks are per thread, and asyncio and uvloop install theirs each time a loop
starts running (restoring the previous ones when it stops), so the ASGI
middleware checks on every call: one ``sys.get_asyncgen_hooks()`` when the
hook is already ours.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import AsyncGenerator, Callable
from typing import Any

__all__ = ["guard_event_loop"]

Finalizer = Callable[[AsyncGenerator[Any, Any]], object]


class _FinalizeOutsideRequests:
    """The loop's finalizer hook, run in an empty context."""

    __slots__ = ("original",)

    def __init__(self, original: Finalizer) -> None:
        self.original = original

    def __call__(self, agen: AsyncGenerator[Any, Any]) -> None:
        contextvars.Context().run(self.original, agen)


def guard_event_loop() -> None:
    """Have this thread's running event loop finalize abandoned async generators
    in no request's context; a no-op when already done or when no hook is set."""
    finalizer = sys.get_asyncgen_hooks().finalizer
    if type(finalizer) is not _FinalizeOutsideRequests and finalizer is not None:
        sys.set_asyncgen_hooks(finalizer=_FinalizeOutsideRequests(finalizer))
