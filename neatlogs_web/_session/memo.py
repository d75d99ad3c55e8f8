"""A returning user's decision, remembered: the common request is one lookup.

A token's decision ("bind it, change nothing") holds while the token's age
stays within every limit (``max_age``, the idle timeout, the refresh point),
so it is remembered per token, or per whole ``Cookie`` header, with the
wall-clock window in which it holds; outside it, the resolver looks again.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from neatlogs_web._session.cache import BoundedCache
from neatlogs_web._session.resolution import Resolution

__all__ = ["DecisionMemo", "Remembered"]


class Remembered(NamedTuple):
    """A decision that holds while wall-clock time is within [valid_from, valid_until]."""

    valid_from: float
    valid_until: float
    resolution: Resolution


class DecisionMemo(BoundedCache[str | bytes, Remembered]):
    """Decisions remembered per token (or whole ``Cookie`` header)."""

    __slots__ = ()

    def recall(self, key: str | bytes) -> Resolution | None:
        """The decision remembered for ``key``, if the token's age still allows it."""
        remembered = self.get(key)
        if remembered is None or not remembered.valid_from <= time.time() <= remembered.valid_until:
            return None
        return remembered.resolution
