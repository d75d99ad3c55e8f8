"""``trace()`` against a raw OpenTelemetry SDK span with the same batching and exporter.

Ours runs under ``neatlogs_web.init()`` (session processor, counting batch
processor) with a session bound, so every span is stamped; the raw side is
``tracer.start_as_current_span`` on a plain provider. Both export into a
discarding exporter through a real ``BatchSpanProcessor``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from benchmarks.harness import Runner, Variant, now
from benchmarks.sink import (
    MAX_EXPORT_BATCH_SIZE,
    MAX_QUEUE_SIZE,
    SCHEDULE_DELAY_MS,
    DiscardingExporter,
    batch_provider,
)

SESSION_ID = "bench-session-1"


def _loop(
    start: Callable[[], AbstractContextManager[Any]],
    around: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Runner:
    def run(n: int) -> float:
        if around is None:
            return _time(start, n)
        with around():
            return _time(start, n)

    return run


def _time(start: Callable[[], AbstractContextManager[Any]], n: int) -> float:
    begin = now()
    for _ in range(n):
        with start():
            pass
    return now() - begin


def _raw(nested: bool) -> Runner:
    tracer = batch_provider(DiscardingExporter()).get_tracer("bench")
    start = lambda: tracer.start_as_current_span("child" if nested else "turn")  # noqa: E731
    return _loop(start, (lambda: tracer.start_as_current_span("turn")) if nested else None)


def _ours(nested: bool) -> Runner:
    import neatlogs_web

    init_tracing()
    trace = neatlogs_web.trace

    def around() -> AbstractContextManager[Any]:
        return _Nested(nested)

    return _loop((lambda: trace("child")) if nested else (lambda: trace("turn")), around)


class _Nested:
    """A bound session, plus an outer ``trace()`` when measuring children."""

    def __init__(self, nested: bool) -> None:
        import neatlogs_web

        self._managers: list[AbstractContextManager[Any]] = [neatlogs_web.session(SESSION_ID)]
        if nested:
            self._managers.append(neatlogs_web.trace("turn"))

    def __enter__(self) -> None:
        for manager in self._managers:
            manager.__enter__()

    def __exit__(self, *exc: object) -> None:
        for manager in reversed(self._managers):
            manager.__exit__(None, None, None)


# One instance, so repeated init() calls have equal arguments and are no-ops.
_EXPORTER = DiscardingExporter()


def init_tracing() -> Any:
    """``neatlogs_web.init()`` exporting into the discarding exporter; idempotent."""
    import neatlogs_web

    return neatlogs_web.init(
        exporter=_EXPORTER,
        set_global_provider=False,
        flush_on_sigterm=False,
        max_queue_size=MAX_QUEUE_SIZE,
        max_export_batch_size=MAX_EXPORT_BATCH_SIZE,
        schedule_delay_ms=SCHEDULE_DELAY_MS,
    )


def build() -> list[Variant]:
    return [
        Variant("raw_root", "raw SDK span, root", lambda: _raw(False)),
        Variant(
            "ours_root",
            "trace() root, session stamped",
            lambda: _ours(False),
            baseline="raw_root",
        ),
        Variant("raw_child", "raw SDK span, nested child", lambda: _raw(True)),
        Variant(
            "ours_child",
            "trace() nested child, session stamped",
            lambda: _ours(True),
            baseline="raw_child",
        ),
    ]
