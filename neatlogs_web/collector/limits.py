"""How much of one span the collector keeps, and how much one API answer holds.

Real senders stay far inside these bounds: OpenTelemetry SDKs send at most 128
attributes, events and links a span by default, an embedding vector is a few thousand
numbers, and a long LLM prompt is tens of KiB. A sender that goes past them loses its
excess, never the collector's memory: the excess is left out or cut, and the span (or
resource, or scope) says how much under `TRUNCATED_KEY`, so nothing is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

#: Attributes kept per span, event, link, resource and scope.
MAX_ATTRIBUTES: Final = 1_000
#: Events kept per span, and links kept per span.
MAX_EVENTS: Final = 1_000
MAX_LINKS: Final = 1_000
#: Items kept per array or key/value list value.
MAX_ITEMS: Final = 10_000
#: Arrays and key/value lists nested inside one value; deeper ones are left out (null).
MAX_DEPTH: Final = 8
#: Characters kept of a string value, bytes of a bytes value.
MAX_STRING: Final = 1_000_000
#: Characters kept of a name (span, event, scope) and of the session id, end user and
#: workflow a trace is filed under: each is a key or a label, never a document.
MAX_NAME: Final = 1_000
#: The attribute that says what the bounds took out of a span, resource or scope.
TRUNCATED_KEY: Final = "neatlogs.collector.truncated"

#: One API answer stops growing past this: a trace's answer stops adding spans, a list
#: ends its page early (its `next` continues from there).
MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024

_ELLIPSIS = "…"


@dataclass(slots=True)
class Cuts:
    """What the bounds took out of one span, resource or scope, counted as it is read."""

    attributes: int = 0
    events: int = 0
    links: int = 0
    #: Array or key/value list items past `MAX_ITEMS`.
    items: int = 0
    #: Values nested deeper than `MAX_DEPTH`.
    nested: int = 0
    #: Characters (bytes of a bytes value) cut from the end of long values and names.
    characters: int = 0

    def __bool__(self) -> bool:
        return any(
            (self.attributes, self.events, self.links, self.items, self.nested, self.characters)
        )

    def counts(self) -> dict[str, int]:
        """The non-zero counts, as the value of `TRUNCATED_KEY`."""
        return {field.name: n for field in fields(self) if (n := getattr(self, field.name))}


def clip(text: str, limit: int, cuts: Cuts) -> str:
    """`text` cut to `limit` characters, the cut marked with "…" and counted in `cuts`."""
    if len(text) <= limit:
        return text
    cuts.characters += len(text) - (limit - 1)
    return text[: limit - 1] + _ELLIPSIS


def clip_name(text: str | None) -> str | None:
    """A session id, end user or workflow as the collector files it: a longer one is
    cut to `MAX_NAME`, so every stored key fits the API's parameters."""
    if text is None or len(text) <= MAX_NAME:
        return text
    return text[: MAX_NAME - 1] + _ELLIPSIS
