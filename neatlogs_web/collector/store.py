"""SQLite storage of spans, with per-trace and per-session summaries kept at ingest.

The page asks "which sessions were active lately" and "what happened in this session"
far more often than spans arrive, so both answers are precomputed: `traces` holds one
row per trace (its session, time span, counts), `sessions` one row per session. A
session's page then reads only its own trace rows, never the spans.

Writes go through one connection under a lock, one transaction per request; reads use a
connection per thread, which WAL lets run beside the writer. An in-memory database has
a single connection (each connection would otherwise see its own empty database).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import grouping
from .otlp import STATUS_ERROR, Batch, Span

ItemT = TypeVar("ItemT")

# The session id is matched on its own column; repeating it per trace as a term would
# only grow the search table.
_SESSION_KEY_SET = frozenset(grouping.SESSION_KEYS)

_SCHEMA_VERSION = 2

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

_INSERT_SPAN = """
INSERT OR IGNORE INTO spans (
    trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code,
    status_message, attributes, events, links, resource_id, scope_id, marker
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_TRACE_COLUMNS = (
    "trace_id, session_id, workflow, name, root_span_id, root_status, start_ns, end_ns,"
    " span_count, error_count, input_tokens, output_tokens, total_tokens, complete,"
    " app_spans, link_trace, http_status, end_user, input, input_key, output, output_key"
)
_TRACE_COLUMN_COUNT = _TRACE_COLUMNS.count(",") + 1

_SESSION_COLUMNS = (
    "session_id, workflow, trace_count, span_count, error_count, first_ns, last_ns,"
    " input_tokens, output_tokens, total_tokens, turn_count, end_user, first_input,"
    " last_output"
)

# A user turn is a trace with at least one span of the app's own (app_spans > 0): a
# trace of HTTP transport spans alone is a request. A turn without input of its own
# that links to the same request as an earlier turn is that turn's background work
# (a summary traced after the response), part of it and not a turn of its own.
_FOLLOW_UP = """
t.app_spans > 0 AND t.input IS NULL AND t.link_trace IS NOT NULL AND EXISTS (
    SELECT 1 FROM traces AS o
    WHERE o.link_trace = t.link_trace AND o.session_id = t.session_id
      AND o.app_spans > 0 AND o.span_count > 0
      AND (o.start_ns, o.trace_id) < (t.start_ns, t.trace_id))
"""

_RECOMPUTE_SESSION = f"""
INSERT INTO sessions ({_SESSION_COLUMNS})
SELECT
    session_id,
    (SELECT w.workflow FROM traces AS w
      WHERE w.session_id = t.session_id AND w.span_count > 0 AND w.workflow IS NOT NULL
      ORDER BY w.start_ns LIMIT 1),
    count(*), sum(span_count), sum(error_count), min(start_ns), max(end_ns),
    sum(input_tokens), sum(output_tokens), sum(total_tokens),
    sum(app_spans > 0) - sum(CASE WHEN {_FOLLOW_UP} THEN 1 ELSE 0 END),
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

_INTERN_CACHE_LIMIT = 10_000
#: Longest input or output text kept on a trace row; the spans keep it whole.
TEXT_LIMIT = 2_000
#: Longest attribute value the search finds; longer ones (documents, prompts) are
#: found through the turn's input and output.
_TERM_LIMIT = 200
#: Bound parameters per lookup query, well under SQLite's limit on any build.
_IN_CHUNK = 500


class StoreError(RuntimeError):
    """The database cannot be used; the message says what to change."""


@dataclass(slots=True)  # not frozen, as TraceRow below
class TokenTotals:
    """Summed token usage; a count is None when no span reported it."""

    input: int | None
    output: int | None
    total: int | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session's summary, as kept in the `sessions` table."""

    session_id: str
    workflow: str | None
    trace_count: int
    span_count: int
    error_count: int
    first_ns: int
    last_ns: int
    tokens: TokenTotals
    #: User turns: traces of the app's own work, less background work of a turn.
    turn_count: int
    end_user: str | None
    first_input: str | None
    last_output: str | None


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which
# made building a session page's rows a third of its answer time. Read them only.
@dataclass(slots=True)
class TraceRow:
    """One trace's summary; markers are in neither its counts nor its times."""

    trace_id: str
    session_id: str | None
    workflow: str | None
    name: str | None
    root_span_id: str | None
    status_code: int
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    tokens: TokenTotals
    complete: bool
    #: False for a request: a trace whose spans all describe HTTP transport.
    turn: bool
    #: The trace the root span links to: a turn's request.
    link_trace: str | None
    http_status: int | None
    end_user: str | None
    input: str | None
    output: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of a session's conversation: a user turn with the request trace that
    carried it and later traces of that request (background work), or a request that
    no turn claims."""

    trace: TraceRow
    request: TraceRow | None
    parts: list[TraceRow]


@dataclass(frozen=True, slots=True)
class SessionPage:
    """A session and one page of its entries; `next_key` is where the next page starts
    (the last trace read), or None on the last page."""

    session: SessionRow
    entries: list[Entry]
    next_key: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """What the sessions list keeps; None or False keeps everything."""

    query: str | None = None
    workflow: str | None = None
    end_user: str | None = None
    #: Only sessions with at least one user turn.
    with_turns: bool = False
    #: Only sessions with at least one error.
    errors: bool = False
    #: Only sessions active at or after / at or before these times (ns since epoch).
    since_ns: int | None = None
    until_ns: int | None = None


def default_db_path() -> Path:
    """Where the collector keeps its database unless told: the user's data directory."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "neatlogs-web" / "collector.db"


class Store:
    """The collector's database; safe to use from many threads at once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._memory = self._path == ":memory:"
        if not self._memory:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # Serialises writes, and for an in-memory database every use of its one connection.
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._interned: dict[tuple[str, str], int] = {}
        try:
            self._writer = self._connect()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self._path} cannot be used ({exc}): pass another --db file"
            ) from exc
        try:
            self._create_schema()
        except BaseException:
            self._writer.close()
            raise

    @property
    def path(self) -> str:
        """The database file, or ":memory:"."""
        return self._path

    def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""
        with self._lock:
            for connection in [*self._readers, self._writer]:
                connection.close()
            self._readers.clear()

    # -- writing ---------------------------------------------------------------------

    def ingest(self, batch: Batch) -> int:
        """Store a batch in one transaction and update the summaries; return new spans.

        A span already stored (a retried export) is ignored, so retries do not double
        any count.
        """
        if not batch.spans:
            return 0
        with self._lock:
            connection = self._writer
            connection.execute("BEGIN IMMEDIATE")
            try:
                stored = self._write(connection, batch.spans)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                # Ids interned in the rolled-back transaction no longer exist.
                self._interned.clear()
                raise
        return stored

    def _write(self, connection: sqlite3.Connection, spans: Sequence[Span]) -> int:
        deltas: dict[str, _TraceDelta] = {}
        terms: set[tuple[str, str]] = set()
        session_keys = _SESSION_KEY_SET
        interned: dict[int, int] = {}  # id() of a batch's shared dict -> row id
        scope_transport: dict[int, bool] = {}  # scope row id -> is a transport scope
        # Spans already stored (a retried export) or repeated within the batch are
        # skipped here, so every row below is new and one executemany inserts them all.
        known = self._stored_span_ids(connection, [(span.trace_id, span.span_id) for span in spans])
        rows = []
        for span in spans:
            key = (span.trace_id, span.span_id)
            if key in known:
                continue
            known.add(key)
            resource_id = interned.get(id(span.resource))
            if resource_id is None:
                resource_id = self._intern(connection, "resources", span.resource)
                interned[id(span.resource)] = resource_id
            scope_id = interned.get(id(span.scope))
            if scope_id is None:
                scope_id = self._intern(connection, "scopes", span.scope)
                interned[id(span.scope)] = scope_id
            marker = grouping.is_marker(span)
            rows.append(
                (
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
                    marker,
                )
            )
            delta = deltas.get(span.trace_id)
            if delta is None:
                delta = deltas[span.trace_id] = _TraceDelta()
            transport = scope_transport.get(scope_id)
            if transport is None:
                transport = scope_transport[scope_id] = grouping.is_transport_scope(span.scope)
            delta.add(span, marker, transport)
            if not marker:
                trace_id = span.trace_id
                terms.add((span.name, trace_id))
                for attribute, value in span.attributes.items():
                    if (
                        type(value) is str
                        and 0 < len(value) <= _TERM_LIMIT
                        and attribute not in session_keys
                    ):
                        terms.add((value, trace_id))
        connection.executemany(_INSERT_SPAN, rows)
        connection.executemany("INSERT OR IGNORE INTO span_terms VALUES (?, ?)", terms)
        touched_sessions = self._update_traces(connection, deltas)
        connection.executemany("DELETE FROM sessions WHERE session_id = ?", touched_sessions)
        connection.executemany(_RECOMPUTE_SESSION, touched_sessions)
        return len(rows)

    def _stored_span_ids(
        self, connection: sqlite3.Connection, keys: list[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Which of these (trace id, span id) pairs are stored already.

        Only the batch's own pairs are probed, one index lookup each, so a long
        trace's earlier spans are never read again.
        """
        found: set[tuple[str, str]] = set()
        for chunk in _chunks(keys, _IN_CHUNK // 2):
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

    def _intern(self, connection: sqlite3.Connection, table: str, value: dict[str, Any]) -> int:
        body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        key = (table, body)
        row_id = self._interned.get(key)
        if row_id is not None:
            return row_id
        connection.execute(f"INSERT OR IGNORE INTO {table} (body) VALUES (?)", (body,))
        row = connection.execute(f"SELECT id FROM {table} WHERE body = ?", (body,)).fetchone()
        if len(self._interned) >= _INTERN_CACHE_LIMIT:
            self._interned.clear()
        self._interned[key] = row_id = int(row[0])
        return row_id

    def _update_traces(
        self, connection: sqlite3.Connection, deltas: dict[str, _TraceDelta]
    ) -> list[tuple[str]]:
        """Merge the batch into the trace rows; return the sessions whose totals changed."""
        existing: dict[str, tuple[Any, ...]] = {}
        for chunk in _chunks(list(deltas), _IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            for row in connection.execute(
                f"SELECT {_TRACE_COLUMNS} FROM traces WHERE trace_id IN ({marks})", chunk
            ):
                existing[row[0]] = row
        sessions: set[str] = set()
        rows = []
        for trace_id, delta in deltas.items():
            row = delta.merged_into(trace_id, existing.get(trace_id))
            rows.append(row)
            old = existing.get(trace_id)
            if old is not None and old[1] is not None:
                sessions.add(old[1])
            if row[1] is not None:
                sessions.add(row[1])
        marks = ",".join("?" * _TRACE_COLUMN_COUNT)
        connection.executemany(
            f"INSERT OR REPLACE INTO traces ({_TRACE_COLUMNS}) VALUES ({marks})", rows
        )
        return [(session_id,) for session_id in sorted(sessions)]

    # -- reading ---------------------------------------------------------------------

    def sessions(
        self,
        *,
        limit: int,
        where: SessionFilter | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[SessionRow]:
        """Sessions by last activity, newest first, optionally filtered and paged.

        The query matches session ids, end users, span names and short attribute values
        (substring, ASCII case-insensitive); `before` is the (last_ns, session_id) of
        the last row of the previous page.
        """
        clauses, params = _session_clauses(where or SessionFilter())
        if before is not None:
            clauses.append("(last_ns, session_id) < (?, ?)")
            params += list(before)
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY last_ns DESC, session_id DESC LIMIT ?"
        params.append(limit)
        with self._reading() as connection:
            return [_session_row(row) for row in connection.execute(sql, params)]

    def count_sessions(self, where: SessionFilter, *, cap: int) -> int:
        """How many sessions `where` keeps, counted up to `cap`."""
        clauses, params = _session_clauses(where)
        sql = "SELECT 1 FROM sessions"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._reading() as connection:
            row = connection.execute(
                f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, cap]
            ).fetchone()
        return int(row[0])

    def facets(self, *, limit: int) -> tuple[list[str], list[str]]:
        """The end users and workflows sessions have, for the page's filters."""
        with self._reading() as connection:
            users = connection.execute(
                "SELECT DISTINCT end_user FROM sessions WHERE end_user IS NOT NULL"
                " ORDER BY end_user LIMIT ?",
                (limit,),
            ).fetchall()
            workflows = connection.execute(
                "SELECT DISTINCT workflow FROM sessions WHERE workflow IS NOT NULL"
                " ORDER BY workflow LIMIT ?",
                (limit,),
            ).fetchall()
        return [row[0] for row in users], [row[0] for row in workflows]

    def session(
        self, session_id: str, *, limit: int, after: tuple[int, str] | None = None
    ) -> SessionPage | None:
        """A session and a page of its entries in time order, or None if no trace is in
        it. A page reads up to ``limit`` traces; a request a turn links to is folded
        into that turn, and a turn's background work into the turn, wherever they are
        in the session. ``after`` is the previous page's ``next_key``; the session index
        serves each page without reading the rest.
        """
        sql = f"SELECT {_TRACE_COLUMNS} FROM traces WHERE session_id = ? AND span_count > 0"
        params: list[Any] = [session_id]
        if after is not None:
            sql += " AND (start_ns, trace_id) > (?, ?)"
            params += list(after)
        sql += " ORDER BY start_ns, trace_id LIMIT ?"
        params.append(limit + 1)
        with self._reading() as connection:
            row = connection.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            traces = [_trace_row(trace) for trace in connection.execute(sql, params)]
            more = len(traces) > limit
            traces = traces[:limit]
            entries = _fold(traces, self._relatives(connection, session_id, traces))
        last = traces[-1] if more else None
        next_key = (last.start_ns, last.trace_id) if last is not None else None
        return SessionPage(_session_row(row), entries, next_key)

    def _relatives(
        self, connection: sqlite3.Connection, session_id: str, traces: list[TraceRow]
    ) -> list[TraceRow]:
        """The session's traces that share a request with these: the requests they link
        to, and every trace that links to the same requests or to these requests."""
        requests = {t.link_trace for t in traces if t.link_trace is not None}
        requests.update(t.trace_id for t in traces if not t.turn)
        if not requests:
            return []
        found: dict[str, TraceRow] = {}
        ids = sorted(requests)
        for chunk in _chunks(ids, _IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            for query in (
                f"SELECT {_TRACE_COLUMNS} FROM traces WHERE link_trace IN ({marks})",
                f"SELECT {_TRACE_COLUMNS} FROM traces WHERE trace_id IN ({marks})",
            ):
                for raw in connection.execute(query, chunk):
                    trace = _trace_row(raw)
                    if trace.session_id == session_id and trace.span_count > 0:
                        found[trace.trace_id] = trace
        return list(found.values())

    def traces(
        self,
        *,
        limit: int,
        without_session: bool = False,
        before: tuple[int, str] | None = None,
    ) -> list[TraceRow]:
        """Traces by start, newest first; `without_session` keeps those in no session."""
        where = ["span_count > 0"]
        params: list[Any] = []
        if without_session:
            where.append("session_id IS NULL")
        if before is not None:
            where.append("(start_ns, trace_id) < (?, ?)")
            params += list(before)
        sql = (
            f"SELECT {_TRACE_COLUMNS} FROM traces WHERE {' AND '.join(where)}"
            " ORDER BY start_ns DESC, trace_id DESC LIMIT ?"
        )
        params.append(limit)
        with self._reading() as connection:
            return [_trace_row(row) for row in connection.execute(sql, params)]

    def trace(self, trace_id: str, *, max_bytes: int) -> tuple[TraceRow, list[Span]] | None:
        """A trace and its spans by start time (markers left out), or None if unknown;
        reading stops at the span whose stored JSON passes `max_bytes` in all."""
        with self._reading() as connection:
            row = connection.execute(
                f"SELECT {_TRACE_COLUMNS} FROM traces WHERE trace_id = ? AND span_count > 0",
                (trace_id,),
            ).fetchone()
            if row is None:
                return None
            spans, size = [], 0
            for span in connection.execute(
                "SELECT s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind,"
                " s.start_ns, s.end_ns,"
                " s.status_code, s.status_message, s.attributes, s.events, s.links,"
                " r.body, c.body"
                " FROM spans AS s"
                " JOIN resources AS r ON r.id = s.resource_id"
                " JOIN scopes AS c ON c.id = s.scope_id"
                " WHERE s.trace_id = ? AND NOT s.marker ORDER BY s.start_ns, s.span_id",
                (trace_id,),
            ):
                spans.append(_span_row(span))
                size += sum(len(text) for text in span[8:])
                if size > max_bytes:
                    break
        return _trace_row(row), spans

    # -- connections -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA busy_timeout = 5000")
        if not self._memory:
            connection.execute("PRAGMA journal_mode = WAL")
            # WAL with NORMAL keeps the database consistent on a crash; a development
            # collector can lose the last transactions on power loss.
            connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    def _create_schema(self) -> None:
        with self._lock:
            version = self._writer.execute("PRAGMA user_version").fetchone()[0]
            if version == _SCHEMA_VERSION:
                return
            tables = self._writer.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if version != 0 or tables:
                raise StoreError(
                    f"{self._path} is not a neatlogs-web collector database of schema version"
                    f" {_SCHEMA_VERSION}: pass another --db file, or delete this one"
                )
            self._writer.executescript(
                f"BEGIN; {_SCHEMA} PRAGMA user_version = {_SCHEMA_VERSION}; COMMIT;"
            )

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection holding one read transaction, so a multi-query answer is consistent."""
        if self._memory:
            with self._lock:
                yield self._writer
            return
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._readers.append(connection)
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            connection.execute("COMMIT")


@dataclass(slots=True)
class _TraceDelta:
    """What one batch adds to a trace; merged into its stored row."""

    span_count: int = 0
    error_count: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    complete: bool = False
    session_id: str | None = None
    workflow: str | None = None
    root: Span | None = None
    earliest: Span | None = None
    app_spans: int = 0
    end_user: str | None = None
    input: str | None = None
    input_key: int | None = None
    output: str | None = None
    output_key: int | None = None

    def add(self, span: Span, marker: bool, transport_scope: bool) -> None:
        if self.session_id is None:
            self.session_id = grouping.session_of(span)
        if self.workflow is None:
            self.workflow = grouping.workflow_of(span.resource)
        if marker:
            self.complete = True
            return
        self.span_count += 1
        self.error_count += span.status_code == STATUS_ERROR
        if span.parent_span_id is None:
            self.root = span
        if self.earliest is None or span.start_ns < self.earliest.start_ns:
            self.earliest = span
        self.start_ns = _min(self.start_ns, span.start_ns)
        self.end_ns = _max(self.end_ns, span.end_ns)
        if not grouping.is_transport(span, transport_scope):
            self.app_spans += 1
        if span.attributes.keys().isdisjoint(grouping.NOTABLE_KEYS):
            return  # most spans: no usage, end user, input or output to look for
        tokens = grouping.tokens_of(span)
        if tokens is not None:
            self.input_tokens = _add(self.input_tokens, tokens.input)
            self.output_tokens = _add(self.output_tokens, tokens.output)
            self.total_tokens = _add(self.total_tokens, tokens.total)
        if self.end_user is None:
            self.end_user = grouping.end_user_of(span)
        if grouping.may_converse(span):
            self._converse(span)

    def _converse(self, span: Span) -> None:
        """Keep the span's input and output when they beat the trace's so far.

        The root's input and output win (what backends that read one span per trace
        show); then an LLM span's; then any span's. Among equals the earliest input and
        the latest output win. Rank and time fit one integer: the rank above bit 56,
        the time in microseconds-ish (ns >> 10, under 2**54 until the year 2500) below.
        """
        talk = grouping.conversation_of(span)
        if span.parent_span_id is None:
            rank = 2
        elif talk.input_messages or talk.output_messages or grouping.ai_kind_of(span) == "LLM":
            rank = 1
        else:
            rank = 0
        if talk.input is not None:
            key = ((2 - rank) << 56) | (span.start_ns >> 10)
            if self.input_key is None or key < self.input_key:
                self.input, self.input_key = _clip(talk.input), key
        if talk.output is not None:
            key = (rank << 56) | (span.end_ns >> 10)
            if self.output_key is None or key > self.output_key:
                self.output, self.output_key = _clip(talk.output), key

    def merged_into(self, trace_id: str, old: tuple[Any, ...] | None) -> tuple[Any, ...]:
        """The trace's new row, in `_TRACE_COLUMNS` order."""
        if old is None:
            old = (trace_id, None, None, None, None, None, None, None, 0, 0, None, None, None, 0)
            old += (0, None, None, None, None, None, None, None)
        (_, session_id, workflow, name, root_span_id, root_status, start_ns, end_ns) = old[:8]
        (link_trace, http_status, end_user, text_in, in_key, text_out, out_key) = old[15:22]
        root = self.root
        root_session = grouping.session_of(root) if root is not None else None
        # The root's session wins: it is what backends that read one span per trace show.
        session_id = root_session or session_id or self.session_id
        if root is not None:
            workflow = grouping.workflow_of(root.resource) or workflow or self.workflow
            name, root_span_id, root_status = root.name, root.span_id, root.status_code
            link_trace = grouping.linked_trace_of(root)
            http_status = grouping.http_status_of(root)
        else:
            workflow = workflow or self.workflow
            earliest = self.earliest
            # Until the root arrives, the trace is named after its earliest span.
            if (
                root_span_id is None
                and earliest is not None
                and (start_ns is None or earliest.start_ns < start_ns)
            ):
                name = earliest.name
        if self.input_key is not None and (in_key is None or self.input_key < in_key):
            text_in, in_key = self.input, self.input_key
        if self.output_key is not None and (out_key is None or self.output_key > out_key):
            text_out, out_key = self.output, self.output_key
        return (
            trace_id,
            session_id,
            workflow,
            name,
            root_span_id,
            root_status,
            _min(start_ns, self.start_ns),
            _max(end_ns, self.end_ns),
            old[8] + self.span_count,
            old[9] + self.error_count,
            _add(old[10], self.input_tokens),
            _add(old[11], self.output_tokens),
            _add(old[12], self.total_tokens),
            int(bool(old[13]) or self.complete),
            old[14] + self.app_spans,
            link_trace,
            http_status,
            end_user or self.end_user,
            text_in,
            in_key,
            text_out,
            out_key,
        )


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _session_clauses(where: SessionFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions on the sessions table for a filter, and their parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.workflow is not None:
        clauses.append("workflow = ?")
        params.append(where.workflow)
    if where.end_user is not None:
        clauses.append("end_user = ?")
        params.append(where.end_user)
    if where.with_turns:
        clauses.append("turn_count > 0")
    if where.errors:
        clauses.append("error_count > 0")
    if where.since_ns is not None:
        clauses.append("last_ns >= ?")
        params.append(where.since_ns)
    if where.until_ns is not None:
        clauses.append("first_ns <= ?")
        params.append(where.until_ns)
    if where.query:
        escaped = where.query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        clauses.append(
            "(session_id LIKE ? ESCAPE '\\' OR end_user LIKE ? ESCAPE '\\'"
            " OR session_id IN ("
            " SELECT t.session_id FROM span_terms AS n JOIN traces AS t USING (trace_id)"
            " WHERE n.term LIKE ? ESCAPE '\\' AND t.session_id IS NOT NULL)"
            " OR session_id IN ("
            " SELECT session_id FROM traces WHERE session_id IS NOT NULL"
            " AND (input LIKE ? ESCAPE '\\' OR output LIKE ? ESCAPE '\\')))"
        )
        params += [pattern] * 5
    return clauses, params


def _fold(traces: list[TraceRow], relatives: list[TraceRow]) -> list[Entry]:
    """A page of traces as conversation entries (the rule `_FOLLOW_UP` also counts by).

    A request some turn links to is shown on the first turn that links to it; later
    turns linking to it without input of their own are that turn's parts.
    """
    if not relatives and all(t.turn and t.link_trace is None for t in traces):
        return [Entry(trace, None, []) for trace in traces]  # nothing to fold
    known = {trace.trace_id: trace for trace in relatives}
    known.update((trace.trace_id, trace) for trace in traces)
    linking: dict[str, list[TraceRow]] = {}
    for trace in sorted(known.values(), key=lambda t: (t.start_ns, t.trace_id)):
        if trace.turn and trace.link_trace is not None:
            linking.setdefault(trace.link_trace, []).append(trace)
    entries = []
    for trace in traces:
        if not trace.turn:
            if trace.trace_id not in linking:
                entries.append(Entry(trace, None, []))
            continue
        group = linking.get(trace.link_trace) if trace.link_trace is not None else None
        if group is None or group[0].trace_id == trace.trace_id:
            request = known.get(trace.link_trace) if trace.link_trace is not None else None
            if request is not None and request.turn:
                request = None  # a link to another turn, not to a request
            parts = [other for other in (group or [])[1:] if other.input is None]
            entries.append(Entry(trace, request, parts))
        elif trace.input is not None:
            entries.append(Entry(trace, None, []))
    return entries


def _chunks(items: list[ItemT], size: int) -> Iterator[list[ItemT]]:
    """``items`` in slices of at most ``size``: one query each, under SQLite's
    bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


# One encoder for every span: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value) if value else "[]" if isinstance(value, list) else "{}"


def _session_row(row: Sequence[Any]) -> SessionRow:
    return SessionRow(
        session_id=row[0],
        workflow=row[1],
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
    )


def _trace_row(row: Sequence[Any]) -> TraceRow:
    root_status = row[5] or 0
    return TraceRow(
        trace_id=row[0],
        session_id=row[1],
        workflow=row[2],
        name=row[3],
        root_span_id=row[4],
        status_code=STATUS_ERROR if row[9] else root_status,
        start_ns=row[6],
        end_ns=row[7],
        span_count=row[8],
        error_count=row[9],
        tokens=TokenTotals(row[10], row[11], row[12]),
        complete=bool(row[13]),
        turn=row[14] > 0,
        link_trace=row[15],
        http_status=row[16],
        end_user=row[17],
        input=row[18],
        output=row[20],
    )


def _span_row(row: Sequence[Any]) -> Span:
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
