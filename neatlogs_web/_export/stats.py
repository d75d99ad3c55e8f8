"""What export counts: spans queued, exported, failed and dropped, and who waits for them.

Our own count, not the SDK's internals: a span that would overflow the queue
is refused and counted here, so drops are exact, and ``flush`` can wait for
exactly the spans queued before it and say whether each was accepted.
"""

from __future__ import annotations

import os
import threading
import time
import weakref


class ExportStats:
    """Counts of what happened to ended spans; read by ``neatlogs_web.stats()``.

    A span is *queued* when admitted, *handed* when the batch processor gives
    it to the exporter, and *settled* once that export is over (exported,
    failed or filtered). Queued minus handed is what waits in the SDK's
    queue; queued minus settled is what a flush still waits for.
    """

    def __init__(self) -> None:
        # Reentrant: the garbage collector can run inside any block that holds it
        # and finalize an abandoned stream whose finally: ends a span, which comes
        # back here on the same thread (a plain lock would wait for itself forever).
        self._lock = threading.RLock()
        self._settled_or_failed = threading.Condition(self._lock)
        self.spans_queued = 0
        self.spans_dropped = 0
        self._handed = 0
        self._settled = 0
        self.spans_exported = 0
        self.spans_failed = 0
        self.spans_filtered = 0
        self.markers_sent = 0
        self.export_failures = 0
        self.native_feedback_sent = 0
        self.native_feedback_failed = 0
        if hasattr(os, "register_at_fork"):
            forget = weakref.WeakMethod(self._forget_queued)
            os.register_at_fork(after_in_child=lambda: (method := forget()) and method())

    def admit(self, limit: int) -> bool:
        """Count one ended span in, unless ``limit`` are already waiting (a drop)."""
        # The lock itself, not the condition: once per span, and nothing to notify.
        with self._lock:
            if self.spans_queued - self._handed >= limit:
                self.spans_dropped += 1
                return False
            self.spans_queued += 1
            return True

    def handed(self, count: int) -> None:
        with self._settled_or_failed:
            self._handed += count

    def settled(
        self, *, exported: int = 0, failed: int = 0, filtered: int = 0, markers: int = 0
    ) -> None:
        with self._settled_or_failed:
            self._settled += exported + failed + filtered
            self.spans_exported += exported
            self.spans_filtered += filtered
            self.markers_sent += markers
            if failed:
                self.spans_failed += failed
                self.export_failures += 1
            self._settled_or_failed.notify_all()

    def judged(self, *, sent: int, failed: int) -> None:
        """Judgments sent to the backend's own API (``native_feedback``), or not."""
        with self._lock:
            self.native_feedback_sent += sent
            self.native_feedback_failed += failed

    def mark(self) -> tuple[int, int]:
        """What a flush started now waits for: ``(spans queued, failures so far)``."""
        with self._settled_or_failed:
            return self.spans_queued, self.export_failures

    def pending(self) -> int:
        with self._settled_or_failed:
            return self.spans_queued - self._settled

    def wait_settled(self, mark: tuple[int, int], deadline: float) -> bool:
        """Wait until every span queued at ``mark`` settled; ``True`` if all were accepted."""
        queued, failures = mark
        with self._settled_or_failed:
            self._settled_or_failed.wait_for(
                lambda: self._settled >= queued or self.export_failures != failures,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            return self._settled >= queued and self.export_failures == failures

    def _forget_queued(self) -> None:
        # A forked child starts with an empty SDK queue: what the parent had
        # queued is the parent's to export.
        with self._settled_or_failed:
            self._handed = self._settled = self.spans_queued

    def snapshot(self) -> dict[str, int]:
        with self._settled_or_failed:
            return {
                "spans_queued": self.spans_queued,
                "spans_pending": self.spans_queued - self._settled,
                "spans_exported": self.spans_exported,
                "spans_failed": self.spans_failed,
                "spans_dropped": self.spans_dropped,
                "spans_filtered": self.spans_filtered,
                "markers_sent": self.markers_sent,
                "export_failures": self.export_failures,
                "native_feedback_sent": self.native_feedback_sent,
                "native_feedback_failed": self.native_feedback_failed,
            }
