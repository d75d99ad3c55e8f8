"""One batch of decoded spans written into the tables, summaries included.

A span already stored (a retried export) or repeated within the batch is skipped
first, so every count below adds only new spans and a retry changes nothing. The
trace rows the batch touches are merged with what it adds; the sessions they belong
to, each keyed by session id and workflow, are then summed again from their trace rows,
one query each. A person's feedback becomes a row of its own beside its turn's trace.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .otlp import Span
from .rows import (
    INSERT_FEEDBACK,
    INSERT_SPAN,
    INSERT_TERM,
    SharedBodies,
    feedback_row,
    search_terms,
    span_row,
)
from .schema import IN_CHUNK, TRACE_COLUMN_COUNT, TRACE_COLUMNS, chunks
from .session_summary import DELETE_SESSION, SUM_SESSION
from .summaries import SessionKey
from .trace_summary import TraceDelta, trace_deltas


class BatchWriter:
    """Writes batches inside the caller's transaction, under the store's write lock."""

    def __init__(self) -> None:
        self._bodies = SharedBodies()

    def write(self, connection: sqlite3.Connection, spans: Sequence[Span]) -> int:
        """Store the batch's new spans and update their summaries; return how many."""
        fresh = _unstored(connection, spans)
        connection.executemany(INSERT_SPAN, self._span_rows(connection, fresh))
        connection.executemany(INSERT_TERM, search_terms(fresh))
        deltas = trace_deltas(fresh)
        connection.executemany(
            INSERT_FEEDBACK,
            [feedback_row(judgment) for delta in deltas.values() for judgment in delta.judgments],
        )
        sessions = _merge_traces(connection, deltas)
        connection.executemany(DELETE_SESSION, sessions)
        connection.executemany(SUM_SESSION, sessions)
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
) -> list[SessionKey]:
    """Merge the batch into the trace rows; return the sessions whose totals changed."""
    existing: dict[str, tuple[Any, ...]] = {}
    for chunk in chunks(list(deltas)):
        marks = ",".join("?" * len(chunk))
        for row in connection.execute(
            f"SELECT {TRACE_COLUMNS} FROM traces WHERE trace_id IN ({marks})", chunk
        ):
            existing[row[0]] = row
    sessions: set[SessionKey] = set()
    rows = []
    for trace_id, delta in deltas.items():
        old = existing.get(trace_id)
        row = delta.merged_into(trace_id, old)
        rows.append(row)
        # A trace can move to another session or workflow (its root arrived): both
        # sessions are summed again.
        if old is not None and old[1] is not None:
            sessions.add(SessionKey(old[1], old[2]))
        if row[1] is not None:
            sessions.add(SessionKey(row[1], row[2]))
    marks = ",".join("?" * TRACE_COLUMN_COUNT)
    connection.executemany(
        f"INSERT OR REPLACE INTO traces ({TRACE_COLUMNS}) VALUES ({marks})", rows
    )
    return sorted(sessions)
