"""The collector database's tables, the version of them this code writes, and the
column orders every query that reads or writes a whole summary row uses.

Spans are kept whole; `traces` and `sessions` are summaries kept at ingest, so the
page's two questions ("which sessions were active lately", "what happened in this
session") read summary rows, never the spans. A session is keyed by its id and its
workflow (`summaries.SessionKey`); `versions` creates and upgrades these tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

ItemT = TypeVar("ItemT")

#: 3: sessions keyed by (session id, workflow), a trace's missing workflow stored as "".
#: 4: what the person felt (felt-latency figures, feedback) on traces and sessions; a
#: feedback span is a judgment of its turn, kept in `feedback`, no span of the trace.
SCHEMA_VERSION = 4

#: The trace columns version 4 added: the root span's felt-latency figures (nanoseconds
#: from the request's arrival; `response_complete` 0 when the answer never ended, NULL
#: when not measured), the trace's judgments counted, and `turn_wait_ns`: its time to the
#: first chunk when it is a turn (not a framework's request trace, which carries the
#: same figures), what a session's waits are taken over.
FELT_COLUMNS = """
    time_to_start_ns INTEGER,
    time_to_first_chunk_ns INTEGER,
    response_duration_ns INTEGER,
    response_complete INTEGER,
    feedback_up INTEGER NOT NULL DEFAULT 0,
    feedback_down INTEGER NOT NULL DEFAULT 0,
    feedback_count INTEGER NOT NULL DEFAULT 0,
    turn_wait_ns INTEGER
""".strip()

#: A person's judgments of turns, one row per feedback span, a trace's latest first.
FEEDBACK_TABLE = """
CREATE TABLE feedback (
    trace_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    span_id TEXT NOT NULL,
    turn_span_id TEXT,
    score REAL,
    label TEXT,
    comment TEXT,
    PRIMARY KEY (trace_id, time_ns, span_id)
) WITHOUT ROWID;
"""

#: Spans, their search terms and trace summaries. Since version 3 `traces.workflow` is
#: written as "" when the resource names no workflow (`summaries.NO_WORKFLOW`), never
#: NULL. `spans.marker` marks a span that is no operation of its trace (the neatlogs
#: SDK's completion marker, a feedback span): kept, left out of the trace's spans.
SPAN_TABLES = f"""
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
    neatlogs_complete INTEGER NOT NULL,
    app_spans INTEGER NOT NULL,
    link_trace TEXT,
    http_status INTEGER,
    end_user TEXT,
    input TEXT,
    input_key INTEGER,
    output TEXT,
    output_key INTEGER,
    {FELT_COLUMNS}
) WITHOUT ROWID;
CREATE INDEX traces_by_link ON traces (link_trace) WHERE link_trace IS NOT NULL;
CREATE INDEX traces_by_start ON traces (start_ns, trace_id);
{FEEDBACK_TABLE}
"""

#: The sessions table, its indexes (the list's orders and filters) and the indexes of a
#: session's traces (in time order, by wait): what an upgrade builds again from the
#: trace rows.
SESSION_TABLES = """
CREATE INDEX traces_by_session ON traces (session_id, workflow, start_ns, trace_id);
CREATE INDEX traces_by_wait ON traces (session_id, workflow, turn_wait_ns)
    WHERE turn_wait_ns IS NOT NULL;
CREATE TABLE sessions (
    session_id TEXT NOT NULL,
    workflow TEXT NOT NULL,
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
    last_output TEXT,
    wait_median_ns INTEGER,
    wait_worst_ns INTEGER,
    feedback_up INTEGER NOT NULL,
    feedback_down INTEGER NOT NULL,
    feedback_count INTEGER NOT NULL,
    PRIMARY KEY (session_id, workflow)
) WITHOUT ROWID;
CREATE INDEX sessions_by_activity ON sessions (last_ns, session_id, workflow);
CREATE INDEX sessions_by_wait ON sessions (wait_worst_ns, session_id, workflow)
    WHERE wait_worst_ns IS NOT NULL;
CREATE INDEX sessions_by_workflow ON sessions (workflow, last_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (end_user, last_ns, session_id, workflow);
"""

#: A trace summary row's columns, in the order `TraceDelta.merged_into` builds a row
#: and `decoders.trace_from` reads one.
TRACE_COLUMNS = (
    "trace_id, session_id, workflow, name, root_span_id, root_status, start_ns, end_ns,"
    " span_count, error_count, input_tokens, output_tokens, total_tokens, neatlogs_complete,"
    " app_spans, link_trace, http_status, end_user, input, input_key, output, output_key,"
    " time_to_start_ns, time_to_first_chunk_ns, response_duration_ns, response_complete,"
    " feedback_up, feedback_down, feedback_count, turn_wait_ns"
)
TRACE_COLUMN_COUNT = TRACE_COLUMNS.count(",") + 1

#: A session summary row's columns, in the order `decoders.session_from` reads one.
SESSION_COLUMNS = (
    "session_id, workflow, trace_count, span_count, error_count, first_ns, last_ns,"
    " input_tokens, output_tokens, total_tokens, turn_count, end_user, first_input,"
    " last_output, wait_median_ns, wait_worst_ns, feedback_up, feedback_down, feedback_count"
)

#: Bound parameters per lookup query, well under SQLite's limit on any build.
IN_CHUNK = 500


def chunks(items: list[ItemT], size: int = IN_CHUNK) -> Iterator[list[ItemT]]:
    """``items`` in slices of at most ``size``: one query each, under SQLite's
    bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
