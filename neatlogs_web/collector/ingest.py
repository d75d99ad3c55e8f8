"""One batch of decoded spans written into the tables, summaries included.

A span already stored (a retried export) or repeated within the batch is skipped
first, so every count below adds only new spans and a retry changes nothing. The
trace rows the batch touches are merged with what it adds; the sessions they belong
to are then summed again from their trace rows, one query each.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .otlp import Span
from .rows import INSERT_SPAN, INSERT_TERM, SharedBodies, search_terms, span_row
from .schema import IN_CHUNK, SESSION_COLUMNS, TRACE_COLUMN_COUNT, TRACE_COLUMNS, chunks
from .trace_summary import TraceDelta, trace_deltas
from .turns import FOLLOW_UP

# A session's summary from its trace rows: counts and times summed, its workflow the
# first trace's, its end user the last trace's, its first input and last output those
# of its turns.
_SUM_SESSION = f"""
INSERT INTO sessions ({SESSION_COLUMNS})
SELECT
    session_id,
    (SELECT w.workflow FROM traces AS w
      WHERE w.session_id = t.session_id AND w.span_count > 0 AND w.workflow IS NOT NULL
      ORDER BY w.start_ns LIMIT 1),
    count(*), sum(span_count), sum(error_count), min(start_ns), max(end_ns),
    sum(input_tokens), sum(output_tokens), sum(total_tokens),
    sum(app_spans > 0) - sum(CASE WHEN {FOLLOW_UP} THEN 1 ELSE 0 END),
    (SELECT w.end_user FROM traces AS w
      WHERE w.session_id = t.session_id AND w.span_count > 0 AND w.end_user IS NOT NULL
      ORDER BY w.start_ns DESC LIMIT 1),
    (SELECT w.input FROM traces AS w
      WHERE w.session_id = t.session_id AND w.span_count > 0 AND w.app_spans > 0
        AND w.input IS NOT NULL
      ORDER BY w.start_ns, w.trace_id LIMIT 1),
    (SELECT w.output FROM traces AS w
      WHERE w.session_id = t.session_id AND w.span_count > 0 AND w.app_spans > 0
        AND w.output IS NOT NULL
      ORDER BY w.start_ns DESC, w.trace_id DESC LIMIT 1)
FROM traces AS t
WHERE session_id = ? AND span_count > 0
GROUP BY session_id
"""


class BatchWriter:
    """Writes batches inside the caller's transaction, under the store's write lock."""

    def __init__(self) -> None:
        self._bodies = SharedBodies()

    def write(self, connection: sqlite3.Connection, spans: Sequence[Span]) -> int:
        """Store the batch's new spans and update their summaries; return how many."""
        fresh = _unstored(connection, spans)
        connection.executemany(INSERT_SPAN, self._span_rows(connection, fresh))
        connection.executemany(INSERT_TERM, search_terms(fresh))
        sessions = _merge_traces(connection, trace_deltas(fresh))
        connection.executemany("DELETE FROM sessions WHERE session_id = ?", sessions)
        connection.executemany(_SUM_SESSION, sessions)
        return len(fresh)

    def rolled_back(self) -> None:
        """The transaction failed: the resource and scope ids it stored are gone."""
        self._bodies.forget()

    def _span_rows(
        self, connection: sqlite3.Connection, spans: list[Span]
    ) -> list[tuple[Any, ...]]:
        resource_ids = self._bodies.ids_of(connection, "resources", [s.resource for s in spans])
        scope_ids = self._bodies.ids_of(connection, "scopes", [s.scope for s in spans])
        return [
            span_row(span, resource_ids[id(span.resource)], scope_ids[id(span.scope)])
            for span in spans
        ]


def _unstored(connection: sqlite3.Connection, spans: Sequence[Span]) -> list[Span]:
    """The batch's spans not stored yet, each (trace id, span id) once."""
    known = _stored_span_ids(connection, [(span.trace_id, span.span_id) for span in spans])
    fresh = []
    for span in spans:
        key = (span.trace_id, span.span_id)
        if key not in known:
            known.add(key)
            fresh.append(span)
    return fresh


def _stored_span_ids(
    connection: sqlite3.Connection, keys: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (trace id, span id) pairs are stored already.

    Only the batch's own pairs are probed, one index lookup each, so a long trace's
    earlier spans are never read again.
    """
    found: set[tuple[str, str]] = set()
    for chunk in chunks(keys, IN_CHUNK // 2):
        values = ",".join("(?, ?)" for _ in chunk)
        # CROSS JOIN keeps the batch as the outer loop: one probe of the
        # (trace_id, span_id) index per pair, never a scan of the table.
        found.update(
            connection.execute(
                f"WITH batch (trace_id, span_id) AS (VALUES {values})"
                " SELECT spans.trace_id, spans.span_id FROM batch CROSS JOIN spans"
                " ON spans.trace_id = batch.trace_id AND spans.span_id = batch.span_id",
                [part for key in chunk for part in key],
            )
        )
    return found


def _merge_traces(
    connection: sqlite3.Connection, deltas: dict[str, TraceDelta]
) -> list[tuple[str]]:
    """Merge the batch into the trace rows; return the sessions whose totals changed,
    as parameter rows."""
    existing: dict[str, tuple[Any, ...]] = {}
    for chunk in chunks(list(deltas)):
        marks = ",".join("?" * len(chunk))
        for row in connection.execute(
            f"SELECT {TRACE_COLUMNS} FROM traces WHERE trace_id IN ({marks})", chunk
        ):
            existing[row[0]] = row
    sessions: set[str] = set()
    rows = []
    for trace_id, delta in deltas.items():
        old = existing.get(trace_id)
        row = delta.merged_into(trace_id, old)
        rows.append(row)
        # A trace can move to another session (its root arrived): both are summed again.
        if old is not None and old[1] is not None:
            sessions.add(old[1])
        if row[1] is not None:
            sessions.add(row[1])
    marks = ",".join("?" * TRACE_COLUMN_COUNT)
    connection.executemany(
        f"INSERT OR REPLACE INTO traces ({TRACE_COLUMNS}) VALUES ({marks})", rows
    )
    return [(session_id,) for session_id in sorted(sessions)]
