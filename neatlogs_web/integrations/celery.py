"""Celery: the session, and the trace, follow a task into the worker.

A chat server often hands part of a turn to a Celery worker; the worker's
spans belong in the same user's session. On publish (the
``before_task_publish`` signal, so ``delay()``, ``apply_async()``,
``send_task()``, chains and retries alike) the session in effect goes with
the message as a **signed token** in a task header, never in the task's
arguments, with the W3C ``traceparent`` beside it. In the worker, from
``task_prerun`` to ``task_postrun`` (which Celery sends after success,
failure and retry alike), the session is bound and the trace context
attached; both are reset after, so the next task on that process or thread
starts clean. A worker binds only a session whose token verifies with its
key: a message from a producer without the key runs with no session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

from celery import Celery, Task, signals
from opentelemetry import context as otel_context
from opentelemetry import propagate as otel_propagate
from opentelemetry.propagators.textmap import Getter

from neatlogs_web._counters import reject
from neatlogs_web._signing import SessionSigner, resolve_secret_keys
from neatlogs_web.context import current_session_id, session
from neatlogs_web.sdk import flush

__all__ = ["DEFAULT_HEADER", "NeatlogsCelery"]

#: Task header carrying the signed session token.
DEFAULT_HEADER: Final = "neatlogs_session"
# Where the running task keeps what to undo at task_postrun (its own request context).
_SCOPE_ATTRIBUTE: Final = "_neatlogs_web_scope"
_FLUSH_AT_SHUTDOWN_S: Final = 5.0

_lock = threading.Lock()
_active: NeatlogsCelery | None = None


class NeatlogsCelery:
    """Carry the current session and trace into Celery tasks: ``NeatlogsCelery(app)``.

    Install it where both the web process and the worker import it (the
    module that creates the Celery app). ``secret_key`` signs the session
    token and must be the web app's key, or one in its list (default
    ``NEATLOGS_SECRET_KEY``; with a list, the first signs and all verify);
    ``max_age`` (seconds, default none) refuses older tokens, so a task
    that waited longer in the queue runs with no session; ``header_name``
    names the task header; ``propagate_trace`` sends W3C ``traceparent``
    so the worker's spans join the trace of the turn that enqueued them.

    Celery's signals are process-wide: one configuration serves every
    Celery app of the process; installing again replaces it.
    """

    def __init__(
        self,
        app: Celery | None = None,
        *,
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
        max_age: float | None = None,
        header_name: str = DEFAULT_HEADER,
        propagate_trace: bool = True,
    ) -> None:
        if max_age is not None and max_age <= 0:
            raise ValueError("max_age must be a positive number of seconds or None")
        if not header_name or not header_name.isidentifier():
            raise ValueError(
                f"header_name {header_name!r} must be a Python identifier: Celery "
                "exposes task headers as attributes of task.request"
            )
        self.app = app
        self.max_age = max_age
        self.header_name = header_name
        self.propagate_trace = propagate_trace
        self._signer = SessionSigner(resolve_secret_keys(secret_key))
        _install(self)

    def sign(self, session_id: str) -> str:
        return self._signer.sign(session_id)

    def verify(self, token: object) -> str | None:
        """The session id of a token from our own publisher, else ``None`` (counted)."""
        if not isinstance(token, str):
            reject("celery_header", "invalid")
            return None
        verified = self._signer.verify(token)
        if verified is None:
            reject("celery_header", "bad_signature")
            return None
        if self.max_age is not None and time.time() - verified.signed_at > self.max_age:
            reject("celery_header", "expired")
            return None
        return verified.session_id


def _install(integration: NeatlogsCelery) -> None:
    global _active
    with _lock:
        _active = integration
    # dispatch_uid: importing twice (a worker and its app module) connects once.
    signals.before_task_publish.connect(
        _add_session_to_message, weak=False, dispatch_uid="neatlogs_web.publish"
    )
    signals.task_prerun.connect(_enter_task, weak=False, dispatch_uid="neatlogs_web.prerun")
    signals.task_postrun.connect(_exit_task, weak=False, dispatch_uid="neatlogs_web.postrun")
    signals.worker_process_shutdown.connect(
        _flush_at_shutdown, weak=False, dispatch_uid="neatlogs_web.process_shutdown"
    )
    signals.worker_shutdown.connect(
        _flush_at_shutdown, weak=False, dispatch_uid="neatlogs_web.worker_shutdown"
    )


def _add_session_to_message(headers: dict[str, Any] | None = None, **_: Any) -> None:
    integration = _active
    if integration is None or headers is None:
        return
    if integration.propagate_trace:
        otel_propagate.inject(headers)
    session_id = current_session_id()
    if session_id is not None:
        headers[integration.header_name] = integration.sign(session_id)
    else:
        # Never forward a token this process did not sign for this task.
        headers.pop(integration.header_name, None)


class _RequestGetter(Getter[Any]):
    """Reads propagation fields from a task's request (headers are its attributes)."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Any) -> list[str]:
        return []


_getter: Final = _RequestGetter()


class _TaskScope:
    """What one task run bound, undone at ``task_postrun``."""

    __slots__ = ("otel_token", "session")

    def __init__(self) -> None:
        self.session: AbstractContextManager[Any] | None = None
        self.otel_token: object = None

    def close(self) -> None:
        if self.session is not None:
            self.session.__exit__(None, None, None)
        if self.otel_token is not None:
            otel_context.detach(self.otel_token)  # type: ignore[arg-type]


def _enter_task(task: Task[Any, Any] | None = None, **_: Any) -> None:
    integration = _active
    if integration is None or task is None:
        return
    request = task.request
    if request.is_eager:
        # apply() and task_always_eager run in the caller's context already.
        return
    scope = _TaskScope()
    if integration.propagate_trace:
        context = otel_propagate.extract(request, getter=_getter)
        if context:
            scope.otel_token = otel_context.attach(context)
    token = getattr(request, integration.header_name, None)
    session_id = integration.verify(token) if token is not None else None
    if session_id is not None:
        scope.session = session(session_id)
        scope.session.__enter__()
    setattr(request, _SCOPE_ATTRIBUTE, scope)


def _exit_task(task: Task[Any, Any] | None = None, **_: Any) -> None:
    if task is None:
        return
    request = task.request
    scope = getattr(request, _SCOPE_ATTRIBUTE, None)
    if isinstance(scope, _TaskScope):
        setattr(request, _SCOPE_ATTRIBUTE, None)
        scope.close()


def _flush_at_shutdown(**_: Any) -> None:
    # Prefork children leave with os._exit: atexit hooks never run there.
    flush(timeout_s=_FLUSH_AT_SHUTDOWN_S)
