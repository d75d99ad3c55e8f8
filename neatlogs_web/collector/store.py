"""The collector's SQLite database: one writer, many readers, safe from any thread.

Writes go through one connection under a lock, one transaction per request; reads use a
connection per thread, which WAL lets run beside the writer. An in-memory database has
a single connection (each connection would otherwise see its own empty database).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .decoders import SPAN_SELECT, SPAN_TEXT_COLUMNS, session_from, span_from, trace_from
from .felt import Judgment
from .ingest import BatchWriter
from .otlp import Batch, Span
from .schema import SCHEMA_VERSION, SESSION_COLUMNS, TRACE_COLUMNS
from .session_reads import JUDGMENTS_LIMIT, judgments_of, session_page, sessions_named
from .summaries import (
    NO_WORKFLOW,
    SessionFilter,
    SessionKey,
    SessionOrder,
    SessionRow,
    TraceRow,
    session_clauses,
)
from .turns import SessionPage
from .versions import UPGRADABLE_VERSIONS, create_or_upgrade


class StoreError(RuntimeError):
    """The database cannot be used; the message says what to change."""


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
        self._batches = BatchWriter()
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
                stored = self._batches.write(connection, batch.spans)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                self._batches.rolled_back()
                raise
        return stored

    # -- reading ---------------------------------------------------------------------

    def sessions(
        self,
        *,
        limit: int,
        where: SessionFilter | None = None,
        before: tuple[int, str, str] | None = None,
        order: SessionOrder = "recent",
    ) -> list[SessionRow]:
        """Sessions by last activity, newest first, or by their longest wait for the
        first words of an answer, longest first (only sessions that measured one);
        optionally filtered and paged.

        The query matches session ids, end users, span names and short attribute values
        (substring, ASCII case-insensitive); `before` is the (last_ns or wait_worst_ns,
        session_id, workflow) of the last row of the previous page.
        """
        clauses, params = session_clauses(where or SessionFilter())
        column = "last_ns" if order == "recent" else "wait_worst_ns"
        if order == "wait":
            clauses.append("wait_worst_ns IS NOT NULL")
        if before is not None:
            clauses.append(f"({column}, session_id, workflow) < (?, ?, ?)")
            params += list(before)
        sql = f"SELECT {SESSION_COLUMNS} FROM sessions"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {column} DESC, session_id DESC, workflow DESC LIMIT ?"
        params.append(limit)
        with self._reading() as connection:
            return [session_from(row) for row in connection.execute(sql, params)]

    def count_sessions(self, where: SessionFilter, *, cap: int) -> int:
        """How many sessions `where` keeps, counted up to `cap`."""
        clauses, params = session_clauses(where)
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
                "SELECT DISTINCT workflow FROM sessions WHERE workflow != ?"
                " ORDER BY workflow LIMIT ?",
                (NO_WORKFLOW, limit),
            ).fetchall()
        return [row[0] for row in users], [row[0] for row in workflows]

    def session(
        self, key: SessionKey, *, limit: int, after: tuple[int, str] | None = None
    ) -> SessionPage | None:
        """A session and a page of its entries in time order, or None if no trace is in
        it. A page reads up to ``limit`` traces; a request a turn links to is folded
        into that turn, and a turn's background work into the turn, wherever they are
        in the session. ``after`` is the previous page's ``next_key``.
        """
        with self._reading() as connection:
            return session_page(connection, key, limit=limit, after=after)

    def sessions_named(self, session_id: str, *, limit: int) -> list[SessionRow]:
        """The sessions with this id, one per workflow, newest first."""
        with self._reading() as connection:
            return sessions_named(connection, session_id, limit=limit)

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
            f"SELECT {TRACE_COLUMNS} FROM traces WHERE {' AND '.join(where)}"
            " ORDER BY start_ns DESC, trace_id DESC LIMIT ?"
        )
        params.append(limit)
        with self._reading() as connection:
            return [trace_from(row) for row in connection.execute(sql, params)]

    def trace(
        self, trace_id: str, *, max_bytes: int
    ) -> tuple[TraceRow, list[Span], list[Judgment]] | None:
        """A trace, its spans by start time (markers and feedback left out) and its
        latest judgments, latest first; or None if unknown. Reading spans stops at the
        span whose stored text passes `max_bytes` in all."""
        with self._reading() as connection:
            row = connection.execute(
                f"SELECT {TRACE_COLUMNS} FROM traces WHERE trace_id = ? AND span_count > 0",
                (trace_id,),
            ).fetchone()
            if row is None:
                return None
            spans, size = [], 0
            for span in connection.execute(
                f"{SPAN_SELECT} WHERE s.trace_id = ? AND NOT s.marker"
                " ORDER BY s.start_ns, s.span_id",
                (trace_id,),
            ):
                spans.append(span_from(span))
                size += sum(len(text) for text in span[SPAN_TEXT_COLUMNS])
                if size > max_bytes:
                    break
            judgments = judgments_of(connection, [trace_id], limit=JUDGMENTS_LIMIT)
        return trace_from(row), spans, judgments.get(trace_id, [])

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
            try:
                usable = create_or_upgrade(self._writer)
            except (sqlite3.Error, ValueError) as exc:  # ValueError: a stored span's JSON
                raise StoreError(
                    f"{self._path} could not be upgraded to schema version {SCHEMA_VERSION}"
                    f" ({exc}); it is unchanged: pass another --db file, or delete this one"
                ) from exc
            if not usable:
                raise StoreError(
                    f"{self._path} is not a neatlogs-web collector database of schema version"
                    f" {', '.join(map(str, UPGRADABLE_VERSIONS))} or {SCHEMA_VERSION}: pass"
                    " another --db file, or delete this one"
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
