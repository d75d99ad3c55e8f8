"""A bounded, thread-safe mapping for values worth remembering per token.

Threaded servers resolve many requests at once: reads take no lock (a
dict lookup is atomic), writes and eviction take one, so the bound holds
and no reader ever sees a mapping change size under it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most ``max_size`` entries; the oldest is evicted first."""

    __slots__ = ("_entries", "_lock", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value remembered for ``key``; a read needs no lock."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            entries = self._entries
            if key not in entries and len(entries) >= self.max_size:
                entries.popitem(last=False)
            entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)
