"""What the person felt on a turn, read from the spans neatlogs_web's middleware records:
how long they waited (figures on the turn's root span) and what they thought of the
answer (`feedback` spans, children of the turn's span in its trace).

A judgment is no operation of its trace: it arrives minutes after the turn, often in
an export of its own, so it is kept beside the trace's summary (its counts and a row of
its own) and never counts as a span, a turn or time spent. A score reads as a thumb: up
at `THUMBS_UP_AT` and above, down below it, so the 1 / 0 of thumbs buttons and a 0-1
rating both read; a label or comment without a score is neither.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from neatlogs_web._tracing.feedback import (
    FEEDBACK_COMMENT_KEY,
    FEEDBACK_LABEL_KEY,
    FEEDBACK_SCORE_KEY,
    FEEDBACK_SPAN_NAME,
    MAX_COMMENT_LENGTH,
    MAX_LABEL_LENGTH,
)
from neatlogs_web._tracing.felt_latency import (
    COMPLETE_KEY,
    DURATION_KEY,
    TIME_TO_FIRST_CHUNK_KEY,
    TIME_TO_START_KEY,
)

from .limits import Cuts, clip
from .otlp import Span

#: A score at or above this is a thumbs up, below it a thumbs down.
THUMBS_UP_AT: Final = 0.5

Thumb = Literal["up", "down"]

_FEEDBACK_KEYS = frozenset({FEEDBACK_SCORE_KEY, FEEDBACK_LABEL_KEY, FEEDBACK_COMMENT_KEY})
_WAIT_KEYS = (TIME_TO_START_KEY, TIME_TO_FIRST_CHUNK_KEY, DURATION_KEY)
_RESPONSE_KEYS = frozenset({*_WAIT_KEYS, COMPLETE_KEY})
#: A wait of more than a day is no wait anyone sat through: a sender's mistake (a
#: timestamp, the wrong unit), ignored like a figure of the wrong type.
MAX_WAIT_SECONDS: Final = 86_400


class ResponseFigures(NamedTuple):
    """What the person waited for, in nanoseconds from the request's arrival; a moment
    that never came (or was not measured) is None. `complete` is False when the answer
    never ended: the person left, or the app failed mid-stream. In the order of the
    trace row's columns (`schema.FELT_COLUMNS`)."""

    time_to_start_ns: int | None
    time_to_first_chunk_ns: int | None
    duration_ns: int | None
    complete: bool | None


@dataclass(frozen=True, slots=True)
class Judgment:
    """One person's judgment of a turn: the `feedback` span, read."""

    trace_id: str
    span_id: str
    #: The span judged: the turn's.
    turn_span_id: str | None
    time_ns: int
    score: float | None
    label: str | None
    comment: str | None

    @property
    def thumb(self) -> Thumb | None:
        """Up or down by the score; None without one."""
        return None if self.score is None else thumb_of(self.score)


def thumb_of(score: float) -> Thumb:
    """The thumb a score reads as."""
    return "up" if score >= THUMBS_UP_AT else "down"


def response_figures(attributes: Mapping[str, Any]) -> ResponseFigures | None:
    """The felt-latency figures among a turn's root span's attributes, or None if it
    carries none; an unreadable value (`unreadable_figures`) reads as not measured."""
    if attributes.keys().isdisjoint(_RESPONSE_KEYS):
        return None
    complete = attributes.get(COMPLETE_KEY)
    return ResponseFigures(
        _nanoseconds(attributes.get(TIME_TO_START_KEY)),
        _nanoseconds(attributes.get(TIME_TO_FIRST_CHUNK_KEY)),
        _nanoseconds(attributes.get(DURATION_KEY)),
        complete if isinstance(complete, bool) else None,
    )


def unreadable_figures(spans: Iterable[Span]) -> int:
    """How many felt-latency figures on these spans `response_figures` leaves out: a
    wait that is no number of seconds from 0 to `MAX_WAIT_SECONDS`, a `complete` that is
    no bool. The sender is told, since its turns show no such figure."""
    count = 0
    for span in spans:
        attributes = span.attributes
        if attributes.keys().isdisjoint(_RESPONSE_KEYS):
            continue  # most spans: no figures
        for key in _WAIT_KEYS:
            count += key in attributes and _nanoseconds(attributes[key]) is None
        count += not isinstance(attributes.get(COMPLETE_KEY, False), bool)
    return count


def is_feedback(span: Span) -> bool:
    """True for a person's judgment: a `feedback` span with a score, label or comment
    (a span of the app's that is only named so stays an operation)."""
    return span.name == FEEDBACK_SPAN_NAME and not span.attributes.keys().isdisjoint(_FEEDBACK_KEYS)


def judgment_of(span: Span) -> Judgment:
    """A feedback span (`is_feedback`) as a judgment; a value of the wrong type is left
    out, a label or comment longer than `record_feedback` takes is cut."""
    attributes = span.attributes
    return Judgment(
        trace_id=span.trace_id,
        span_id=span.span_id,
        turn_span_id=span.parent_span_id,
        time_ns=span.start_ns,
        score=_score(attributes.get(FEEDBACK_SCORE_KEY)),
        label=_text(attributes.get(FEEDBACK_LABEL_KEY), MAX_LABEL_LENGTH),
        comment=_text(attributes.get(FEEDBACK_COMMENT_KEY), MAX_COMMENT_LENGTH),
    )


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _nanoseconds(seconds: Any) -> int | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # NaN fails too
        return None
    return round(seconds * 1_000_000_000)


def _text(value: Any, limit: int) -> str | None:
    return clip(value, limit, Cuts()) if isinstance(value, str) and value else None
