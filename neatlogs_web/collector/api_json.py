"""How the JSON API shows a session, a trace and a span.

Times are RFC 3339 UTC with microseconds and durations milliseconds, so a script reads
them without knowing nanoseconds; a span also says what it took in and gave back, read
from whichever convention its sender used. A turn says what the person felt: how long
they waited (`response`, and `complete`: whether the answer was delivered whole) and
what they thought of it (`feedback` counted, its `judgments` listed).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from . import conversation, grouping
from .felt import Judgment, ResponseFigures
from .otlp import SPAN_KINDS, STATUS_CODES, Span
from .summaries import FeedbackCounts, SessionRow, TokenTotals, TraceRow
from .turns import Entry

#: Background traces shown per turn; `parts_omitted` counts the others.
PARTS_LIMIT = 100


def session_json(row: SessionRow) -> dict[str, Any]:
    """A session as the API shows it."""
    return {
        "session_id": row.session_id,
        "workflow": row.workflow,
        "trace_count": row.trace_count,
        "span_count": row.span_count,
        "error_count": row.error_count,
        "first_seen": rfc3339(row.first_ns),
        "last_seen": rfc3339(row.last_ns),
        "duration_ms": _ms(row.last_ns - row.first_ns),
        "tokens": _tokens(row.tokens),
        "turn_count": row.turn_count,
        "end_user": row.end_user,
        "first_input": row.first_input,
        "last_output": row.last_output,
        "time_to_first_chunk_ms": (
            None
            if row.wait_median_ns is None or row.wait_worst_ns is None
            else {"median": _ms(row.wait_median_ns), "worst": _ms(row.wait_worst_ns)}
        ),
        "feedback": _feedback(row.feedback),
    }


def entry_json(entry: Entry, judgments: dict[str, list[Judgment]]) -> dict[str, Any]:
    """A row of a session's conversation: a turn, or a request no turn claims; with the
    turn's latest `judgments` (by trace id), latest first."""
    answer = trace_json(entry.trace)
    answer["request"] = trace_json(entry.request) if entry.request is not None else None
    answer["parts"] = [trace_json(part) for part in entry.parts[:PARTS_LIMIT]]
    answer["parts_omitted"] = max(len(entry.parts) - PARTS_LIMIT, 0)
    answer["judgments"] = [judgment_json(j) for j in judgments.get(entry.trace.trace_id, ())]
    return answer


def judgment_json(judgment: Judgment) -> dict[str, Any]:
    """A person's judgment of a turn; `thumb` is up or down by its score (null without one)."""
    return {
        "time": rfc3339(judgment.time_ns),
        "thumb": judgment.thumb,
        "score": judgment.score,
        "label": judgment.label,
        "comment": judgment.comment,
        "span_id": judgment.span_id,
    }


def trace_json(row: TraceRow) -> dict[str, Any]:
    """A trace's summary as the API shows it."""
    return {
        "trace_id": row.trace_id,
        "session_id": row.session_id,
        "workflow": row.workflow,
        "name": row.name,
        "start": rfc3339(row.start_ns),
        "end": rfc3339(row.end_ns),
        "duration_ms": _ms(row.end_ns - row.start_ns),
        "status": _name(STATUS_CODES, row.status_code),
        "span_count": row.span_count,
        "error_count": row.error_count,
        "tokens": _tokens(row.tokens),
        # Whether the person got the whole answer: what a reader takes "complete" for.
        "complete": row.response.complete if row.response is not None else None,
        "response": _response(row.response),
        "feedback": _feedback(row.feedback),
        "turn": row.turn,
        "input": row.input,
        "output": row.output,
        "end_user": row.end_user,
        "http_status": row.http_status,
    }


def span_json(span: Span) -> dict[str, Any]:
    """A span as the API shows it; ids are lowercase hex, as in OTLP JSON.

    Beside the span as sent: `ai_kind` (LLM, TOOL, RETRIEVER, ... or null), `input`
    and `output` text, and `messages` ({"input": [...], "output": [...]} of
    {"role", "content"}, or null), read from whichever convention the sender used.
    """
    talk = conversation.conversation_of(span) if conversation.may_converse(span) else None
    messages = None
    if talk is not None and (talk.input_messages or talk.output_messages):
        messages = {
            "input": [{"role": m.role, "content": m.content} for m in talk.input_messages],
            "output": [{"role": m.role, "content": m.content} for m in talk.output_messages],
        }
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": _name(SPAN_KINDS, span.kind),
        "start": rfc3339(span.start_ns),
        "end": rfc3339(span.end_ns),
        "duration_ms": _ms(span.end_ns - span.start_ns),
        "status": {
            "code": _name(STATUS_CODES, span.status_code),
            "message": span.status_message,
        },
        "attributes": span.attributes,
        "events": [
            {"name": e["name"], "time": rfc3339(e["time_ns"]), "attributes": e["attributes"]}
            for e in span.events
        ],
        "links": span.links,
        "resource": span.resource,
        "scope": span.scope,
        "ai_kind": grouping.ai_kind_of(span),
        "input": talk.input if talk is not None else None,
        "output": talk.output if talk is not None else None,
        "messages": messages,
    }


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC with microseconds."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_utc_seconds(seconds)}.{rest // 1000:06d}Z"


@functools.lru_cache(maxsize=4096)
def _utc_seconds(seconds: int) -> str:
    # A trace's start and end, and neighbouring turns, often share a second: formatting
    # it once saves a strftime per time on a page of hundreds.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _name(names: tuple[str, ...], code: int) -> str:
    """An OTLP enum's name; a code from a newer OTLP version reads as the default (0)."""
    return names[code] if 0 <= code < len(names) else names[0]


def _ms(ns: int) -> float:
    return round(ns / 1_000_000, 3)


def _optional_ms(ns: int | None) -> float | None:
    return None if ns is None else _ms(ns)


def _response(figures: ResponseFigures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "time_to_start_ms": _optional_ms(figures.time_to_start_ns),
        "time_to_first_chunk_ms": _optional_ms(figures.time_to_first_chunk_ns),
        "duration_ms": _optional_ms(figures.duration_ns),
        "complete": figures.complete,
    }


def _feedback(counts: FeedbackCounts) -> dict[str, int]:
    return {"up": counts.up, "down": counts.down, "count": counts.count}


def _tokens(tokens: TokenTotals) -> dict[str, int | None] | None:
    if tokens.input is None and tokens.output is None and tokens.total is None:
        return None
    return {"input": tokens.input, "output": tokens.output, "total": tokens.total}
