"""The rows a decoded span becomes: its `spans` row, its search terms, the shared
`resources` and `scopes` rows it refers to, and for a person's judgment its `feedback`
row.

A batch part's spans share one resource and one scope, and most exports repeat the
last one's, so each distinct body is stored once and span rows refer to it by id.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from . import felt, grouping
from .felt import Judgment
from .otlp import Span

INSERT_SPAN = """
INSERT OR IGNORE INTO spans (
    trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
    status_message, attributes, events, links, resource_id, scope_id, marker
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_TERM = "INSERT OR IGNORE INTO span_terms VALUES (?, ?)"
INSERT_FEEDBACK = """
INSERT OR IGNORE INTO feedback (
    trace_id, time_ns, span_id, turn_span_id, score, label, comment
) VALUES (?, ?, ?, ?, ?, ?, ?)
"""

#: Longest attribute value the search finds; longer ones (documents, prompts) are
#: found through the turn's input and output.
_TERM_LIMIT = 200
# The session id is matched on its own column; repeating it per trace as a term would
# only grow the search table.
_SESSION_KEYS = frozenset(grouping.SESSION_KEYS)
_BODY_CACHE_LIMIT = 10_000

# One encoder for every span: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def span_row(span: Span, resource_id: int, scope_id: int) -> tuple[Any, ...]:
    """The span's `spans` row, in `INSERT_SPAN` order; a span that is no operation of
    its trace (the SDK's completion marker, a person's feedback) is kept, marked, and
    left out of the trace's spans by the reads."""
    return (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.name,
        span.kind,
        span.start_ns,
        span.end_ns,
        span.status_code,
        span.status_message,
        _dumps(span.attributes),
        _dumps(span.events),
        _dumps(span.links),
        resource_id,
        scope_id,
        grouping.is_marker(span) or felt.is_feedback(span),
    )


def feedback_row(judgment: Judgment) -> tuple[Any, ...]:
    """A judgment's `feedback` row, in `INSERT_FEEDBACK` order."""
    return (
        judgment.trace_id,
        judgment.time_ns,
        judgment.span_id,
        judgment.turn_span_id,
        judgment.score,
        judgment.label,
        judgment.comment,
    )


def search_terms(spans: Sequence[Span]) -> set[tuple[str, str]]:
    """(term, trace id) rows for `span_terms`: each span's name and its short string
    attribute values, session ids and markers left out."""
    terms: set[tuple[str, str]] = set()
    for span in spans:
        if grouping.is_marker(span):
            continue
        terms.add((span.name, span.trace_id))
        for attribute, value in span.attributes.items():
            if (
                type(value) is str
                and 0 < len(value) <= _TERM_LIMIT
                and attribute not in _SESSION_KEYS
            ):
                terms.add((value, span.trace_id))
    return terms


class SharedBodies:
    """The ids of stored resource and scope bodies, remembered across batches.

    Written only under the store's write lock; `forget` after a rolled-back
    transaction, whose ids no longer exist.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}

    def ids_of(
        self, connection: sqlite3.Connection, table: str, values: list[dict[str, Any]]
    ) -> dict[int, int]:
        """The row ids of these values in `table`, keyed by `id()` of each value: a batch
        part's spans share one resource dict and one scope dict, each looked up once."""
        ids: dict[int, int] = {}
        for value in values:
            if id(value) not in ids:
                ids[id(value)] = self._id_of(connection, table, value)
        return ids

    def _id_of(self, connection: sqlite3.Connection, table: str, value: dict[str, Any]) -> int:
        """The row id of `value` in `table` ("resources" or "scopes"), stored if new."""
        body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        key = (table, body)
        row_id = self._ids.get(key)
        if row_id is not None:
            return row_id
        connection.execute(f"INSERT OR IGNORE INTO {table} (body) VALUES (?)", (body,))
        row = connection.execute(f"SELECT id FROM {table} WHERE body = ?", (body,)).fetchone()
        if len(self._ids) >= _BODY_CACHE_LIMIT:
            self._ids.clear()
        self._ids[key] = row_id = int(row[0])
        return row_id

    def forget(self) -> None:
        """Drop every remembered id: the transaction that stored some was rolled back."""
        self._ids.clear()


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value) if value else "[]" if isinstance(value, list) else "{}"
