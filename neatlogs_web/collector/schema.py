"""The collector database's tables, the one version of them this code reads, and the
column orders every query that reads or writes a whole summary row uses.

Spans are kept whole; `traces` and `sessions` are summaries kept at ingest, so the
page's two questions ("which sessions were active lately", "what happened in this
session") read summary rows, never the spans.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TypeVar

ItemT = TypeVar("ItemT")

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE resources (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);
CREATE TABLE scopes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);
CREATE TABLE spans (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    links TEXT NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES resources (id),
    scope_id INTEGER NOT NULL REFERENCES scopes (id),
    marker INTEGER NOT NULL
);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_id, span_id);
-- Distinct span names and short attribute values per trace: what the search scans
-- instead of every span.
CREATE TABLE span_terms (
    term TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (term, trace_id)
) WITHOUT ROWID;
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,
    session_id TEXT,
    workflow TEXT,
    name TEXT,
    root_span_id TEXT,
    root_status INTEGER,
    start_ns INTEGER,
    end_ns INTEGER,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    complete INTEGER NOT NULL,
    app_spans INTEGER NOT NULL,
    link_trace TEXT,
    http_status INTEGER,
    end_user TEXT,
    input TEXT,
    input_key INTEGER,
    output TEXT,
    output_key INTEGER
) WITHOUT ROWID;
CREATE INDEX traces_by_session ON traces (session_id, start_ns, trace_id);
CREATE INDEX traces_by_link ON traces (link_trace) WHERE link_trace IS NOT NULL;
CREATE INDEX traces_by_start ON traces (start_ns, trace_id);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    workflow TEXT,
    trace_count INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    turn_count INTEGER NOT NULL,
    end_user TEXT,
    first_input TEXT,
    last_output TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_by_activity ON sessions (last_ns, session_id);
CREATE INDEX sessions_by_workflow ON sessions (workflow, last_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (end_user, last_ns, session_id);
"""

#: A trace summary row's columns, in the order `TraceDelta.merged_into` builds a row
#: and `decoders.trace_from` reads one.
TRACE_COLUMNS = (
    "trace_id, session_id, workflow, name, root_span_id, root_status, start_ns, end_ns,"
    " span_count, error_count, input_tokens, output_tokens, total_tokens, complete,"
    " app_spans, link_trace, http_status, end_user, input, input_key, output, output_key"
)
TRACE_COLUMN_COUNT = TRACE_COLUMNS.count(",") + 1

#: A session summary row's columns, in the order `decoders.session_from` reads one.
SESSION_COLUMNS = (
    "session_id, workflow, trace_count, span_count, error_count, first_ns, last_ns,"
    " input_tokens, output_tokens, total_tokens, turn_count, end_user, first_input,"
    " last_output"
)

#: Bound parameters per lookup query, well under SQLite's limit on any build.
IN_CHUNK = 500


def create_or_check(connection: sqlite3.Connection) -> bool:
    """Create the tables in an empty database; False when the database holds anything
    but this schema version, which this code must not touch."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return True
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if version != 0 or tables:
        return False
    connection.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    return True


def chunks(items: list[ItemT], size: int = IN_CHUNK) -> Iterator[list[ItemT]]:
    """``items`` in slices of at most ``size``: one query each, under SQLite's
    bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
