"""Rows read from SQLite turned back into the records the API shows.

Each reads its columns by position, in the order `schema` declares them, so a
schema change and its decoder change together. A workflow stored as "" (none) reads
as None.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .felt import Judgment, ResponseFigures
from .otlp import STATUS_ERROR, Span
from .summaries import FeedbackCounts, SessionRow, TokenTotals, TraceRow

#: The spans columns `span_from` reads, with the bodies of the span's resource and scope.
SPAN_SELECT = (
    "SELECT s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind,"
    " s.start_ns, s.end_ns,"
    " s.status_code, s.status_message, s.attributes, s.events, s.links,"
    " r.body, c.body"
    " FROM spans AS s"
    " JOIN resources AS r ON r.id = s.resource_id"
    " JOIN scopes AS c ON c.id = s.scope_id"
)
#: The text columns of a `SPAN_SELECT` row (status message, JSON bodies): what a
#: trace's answer budget counts.
SPAN_TEXT_COLUMNS = slice(8, None)


def session_from(row: Sequence[Any]) -> SessionRow:
    """A `sessions` row, selected as `schema.SESSION_COLUMNS`."""
    return SessionRow(
        session_id=row[0],
        workflow=row[1] or None,
        trace_count=row[2],
        span_count=row[3],
        error_count=row[4],
        first_ns=row[5],
        last_ns=row[6],
        tokens=TokenTotals(row[7], row[8], row[9]),
        turn_count=row[10],
        end_user=row[11],
        first_input=row[12],
        last_output=row[13],
        wait_median_ns=row[14],
        wait_worst_ns=row[15],
        feedback=FeedbackCounts(row[16], row[17], row[18]),
    )


def trace_from(row: Sequence[Any]) -> TraceRow:
    """A `traces` row, selected as `schema.TRACE_COLUMNS`; a trace with an error
    anywhere reads as an error."""
    root_status = row[5] or 0
    return TraceRow(
        trace_id=row[0],
        session_id=row[1],
        workflow=row[2] or None,
        name=row[3],
        root_span_id=row[4],
        status_code=STATUS_ERROR if row[9] else root_status,
        start_ns=row[6],
        end_ns=row[7],
        span_count=row[8],
        error_count=row[9],
        tokens=TokenTotals(row[10], row[11], row[12]),
        neatlogs_complete=bool(row[13]),
        turn=row[14] > 0,
        link_trace=row[15],
        http_status=row[16],
        end_user=row[17],
        input=row[18],
        output=row[20],
        response=_figures(row[22:26]),
        feedback=FeedbackCounts(row[26], row[27], row[28]),
    )


#: The `feedback` columns `judgment_from` reads.
JUDGMENT_COLUMNS = "trace_id, span_id, turn_span_id, time_ns, score, label, comment"


def judgment_from(row: Sequence[Any]) -> Judgment:
    """A `feedback` row, selected as `JUDGMENT_COLUMNS`."""
    return Judgment(*row)


def _figures(columns: Sequence[Any]) -> ResponseFigures | None:
    """A trace's felt-latency columns; None when none was measured."""
    start, first_chunk, duration, complete = columns
    if start is None and first_chunk is None and duration is None and complete is None:
        return None
    done = None if complete is None else bool(complete)
    return ResponseFigures(start, first_chunk, duration, done)


def span_from(row: Sequence[Any]) -> Span:
    """A span as `SPAN_SELECT` reads it."""
    return Span(
        trace_id=row[0],
        span_id=row[1],
        parent_span_id=row[2],
        name=row[3],
        kind=row[4],
        start_ns=row[5],
        end_ns=row[6],
        status_code=row[7],
        status_message=row[8],
        attributes=json.loads(row[9]),
        events=json.loads(row[10]),
        links=json.loads(row[11]),
        resource=json.loads(row[12]),
        scope=json.loads(row[13]),
    )
