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

Given ``init_options``, the integration also starts tracing in the worker,
once in each process that runs tasks: every prefork child after its fork
(``worker_process_init``), the worker process itself for solo, threads,
gevent and eventlet (``worker_init``, which every pool sends; threads and
green pools send no ``worker_process_init``). A process that runs a task
where tracing never started says so once, in the worker's log, naming the fix.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

from celery import Celery, Task, signals
from opentelemetry import context as otel_context
from opentelemetry import propagate as otel_propagate
from opentelemetry.propagators.textmap import Getter

from neatlogs_web._session.binding import current_session_id, session
from neatlogs_web._session.counters import reject
from neatlogs_web._session.signing import SessionSigner, resolve_secret_keys
from neatlogs_web._tracing.init_options import InitConfig
from neatlogs_web._tracing.setup import active_pipeline, flush, init

__all__ = ["DEFAULT_HEADER", "NeatlogsCelery"]

logger = logging.getLogger("neatlogs_web")

#: Task header carrying the signed session token.
DEFAULT_HEADER: Final = "neatlogs_session"
# Where the running task keeps what to undo at task_postrun (its own request context).
_SCOPE_ATTRIBUTE: Final = "_neatlogs_web_scope"
_FLUSH_AT_SHUTDOWN_S: Final = 5.0

_lock = threading.Lock()
_active: NeatlogsCelery | None = None
# Whether this process said that it runs tasks without tracing (it says so once).
_warned_not_initialised = False


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
    ``init_options`` are ``neatlogs_web.init()``'s keyword arguments: with
    them the worker calls ``init()`` in each process that runs tasks, on
    every pool (``{}``: its defaults); without them the app must do it.

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
        init_options: Mapping[str, Any] | None = None,
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
        self.init_options = _checked_init_options(init_options)
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


def _checked_init_options(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An option ``init()`` does not take, or a value it refuses, fails where the app
    starts, not later in each worker process (where Celery would only log it)."""
    if options is None:
        return None
    try:
        InitConfig.from_options(options)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"NeatlogsCelery(init_options=...) takes neatlogs_web.init()'s keyword "
            f"arguments: {error}"
        ) from None
    return dict(options)


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
    signals.worker_init.connect(
        _init_tracing_in_worker, weak=False, dispatch_uid="neatlogs_web.worker_init"
    )
    signals.worker_process_init.connect(
        _init_tracing_in_pool_process, weak=False, dispatch_uid="neatlogs_web.process_init"
    )
    signals.worker_process_shutdown.connect(
        _flush_at_shutdown, weak=False, dispatch_uid="neatlogs_web.process_shutdown"
    )
    signals.worker_shutdown.connect(
        _flush_at_shutdown, weak=False, dispatch_uid="neatlogs_web.worker_shutdown"
    )


def _init_tracing_in_worker(sender: Any = None, **_: Any) -> None:
    # worker_init comes once, in the worker's own process, before its pool exists.
    # A prefork worker runs no task there: each child starts tracing after its fork,
    # since the export thread would not survive the fork.
    pool_cls = getattr(sender, "pool_cls", None)
    if pool_cls is None or _pool_forks_children(pool_cls):
        return
    _init_tracing()


def _init_tracing_in_pool_process(**_: Any) -> None:
    # A prefork child just forked, or the solo pool being built (worker_init was first).
    _init_tracing()


def _pool_forks_children(pool_cls: object) -> bool:
    """Whether the worker's pool (a name such as ``"threads"``, or a class) runs tasks
    in forked processes."""
    from celery.concurrency import get_implementation
    from celery.concurrency.prefork import TaskPool as PreforkPool

    pool = get_implementation(pool_cls)
    return isinstance(pool, type) and issubclass(pool, PreforkPool)


def _init_tracing() -> None:
    integration = _active
    if integration is None or integration.init_options is None:
        return
    if active_pipeline() is None:  # the app's own handler may have been first
        init(**integration.init_options)


def _warn_not_initialised(integration: NeatlogsCelery) -> None:
    global _warned_not_initialised
    with _lock:  # the threads pool starts several first tasks at once
        if _warned_not_initialised:
            return
        _warned_not_initialised = True
    if integration.init_options is None:
        fix = (
            "pass init()'s options to the integration, NeatlogsCelery(app, "
            "init_options={...}), and it calls init() in every process that runs "
            "tasks, on every pool (a worker_process_init handler covers only "
            "prefork and solo)"
        )
    else:
        fix = (
            "NeatlogsCelery(app, init_options=...) could not start it: see the "
            "error logged when the worker started, and create NeatlogsCelery in "
            "the module that `celery -A` imports"
        )
    logger.warning(
        "neatlogs_web: this Celery worker process runs tasks but tracing was never "
        "initialised, so their spans are not exported: %s",
        fix,
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
    if active_pipeline() is None:
        _warn_not_initialised(integration)
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
