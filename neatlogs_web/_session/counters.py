"""Counts of what the middleware skipped or survived, for ``stats()``.

Bad input is skipped, never an error page, and a failure inside our own
resolution degrades to a fresh session, never an error page either: both
must still be visible to the operator. Values are never logged.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

logger = logging.getLogger("neatlogs_web")

_lock = threading.Lock()
_rejected: Counter[str] = Counter()
_internal_errors: Counter[str] = Counter()


def reject(source: str, reason: str) -> None:
    """Count and debug-log a skipped session value."""
    with _lock:
        _rejected[f"{source}.{reason}"] += 1
    logger.debug("neatlogs_web skipped a session value from %s: %s", source, reason)


def internal_error(where: str) -> None:
    """Count a failure of our own code; log it with its traceback the first time.

    Call from an ``except`` block: the request goes on with a degraded session.
    """
    with _lock:
        _internal_errors[where] += 1
        first = _internal_errors[where] == 1
    if first:
        logger.exception(
            "neatlogs_web failed while %s; the request is served with a fresh session "
            "(counted in neatlogs_web.stats()['internal_errors']; logged once)",
            where,
        )


def rejection_counts() -> dict[str, int]:
    """Skipped session values so far, by ``"<source>.<reason>"``."""
    with _lock:
        return dict(_rejected)


def internal_error_counts() -> dict[str, int]:
    """Failures of the middleware's own work so far, by where they happened."""
    with _lock:
        return dict(_internal_errors)
