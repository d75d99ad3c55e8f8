"""A session's page read from the summaries: the session, a page of its traces folded
into conversation entries with the judgments of their turns, and the sessions an id
names across workflows.

A session is its id within its workflow (`SessionKey`): every query here is bounded by
both, so two apps' "conv-1" never share a turn, a request or a background trace.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .decoders import JUDGMENT_COLUMNS, judgment_from, session_from, trace_from
from .felt import Judgment
from .schema import SESSION_COLUMNS, TRACE_COLUMNS, chunks
from .summaries import NO_WORKFLOW, SessionKey, SessionRow, TraceRow
from .turns import SessionPage, fold

#: Judgments shown per turn, latest first; the turn counts them all.
JUDGMENTS_LIMIT = 20


def sessions_named(
    connection: sqlite3.Connection, session_id: str, *, limit: int
) -> list[SessionRow]:
    """The sessions with this id, one per workflow, by last activity, newest first: what a
    link naming only the id may mean."""
    rows = connection.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?"
        " ORDER BY last_ns DESC, workflow LIMIT ?",
        (session_id, limit),
    )
    return [session_from(row) for row in rows]


def session_page(
    connection: sqlite3.Connection,
    key: SessionKey,
    *,
    limit: int,
    after: tuple[int, str] | None,
) -> SessionPage | None:
    """The session and up to ``limit`` of its traces after ``after``, as entries; None if
    no trace is in it. The session index serves each page without reading the rest."""
    row = connection.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ? AND workflow = ?", key
    ).fetchone()
    if row is None:
        return None
    sql = (
        f"SELECT {TRACE_COLUMNS} FROM traces"
        " WHERE session_id = ? AND workflow = ? AND span_count > 0"
    )
    params: list[Any] = [*key]
    if after is not None:
        sql += " AND (start_ns, trace_id) > (?, ?)"
        params += list(after)
    sql += " ORDER BY start_ns, trace_id LIMIT ?"
    params.append(limit + 1)
    traces = [trace_from(trace) for trace in connection.execute(sql, params)]
    more = len(traces) > limit
    traces = traces[:limit]
    entries = fold(traces, _relatives(connection, key, traces))
    last = traces[-1] if more else None
    next_key = (last.start_ns, last.trace_id) if last is not None else None
    judged = [entry.trace.trace_id for entry in entries if entry.trace.feedback.count]
    judgments = judgments_of(connection, judged, limit=JUDGMENTS_LIMIT)
    return SessionPage(session_from(row), entries, next_key, judgments)


def judgments_of(
    connection: sqlite3.Connection, trace_ids: list[str], *, limit: int
) -> dict[str, list[Judgment]]:
    """The latest ``limit`` judgments of each of these traces, latest first; the trace
    rows count them all."""
    found: dict[str, list[Judgment]] = {}
    for chunk in chunks(trace_ids):
        marks = ",".join("?" * len(chunk))
        for raw in connection.execute(
            f"SELECT {JUDGMENT_COLUMNS} FROM ("
            f" SELECT {JUDGMENT_COLUMNS}, row_number() OVER ("
            "  PARTITION BY trace_id ORDER BY time_ns DESC, span_id DESC) AS latest"
            f" FROM feedback WHERE trace_id IN ({marks}))"
            " WHERE latest <= ? ORDER BY trace_id, latest",
            [*chunk, limit],
        ):
            judgment = judgment_from(raw)
            found.setdefault(judgment.trace_id, []).append(judgment)
    return found


def _relatives(
    connection: sqlite3.Connection, key: SessionKey, traces: list[TraceRow]
) -> list[TraceRow]:
    """The session's traces that share a request with these: the requests they link
    to, and every trace that links to the same requests or to these requests."""
    requests = {t.link_trace for t in traces if t.link_trace is not None}
    requests.update(t.trace_id for t in traces if not t.turn)
    if not requests:
        return []
    found: dict[str, TraceRow] = {}
    for chunk in chunks(sorted(requests)):
        marks = ",".join("?" * len(chunk))
        for query in (
            f"SELECT {TRACE_COLUMNS} FROM traces WHERE link_trace IN ({marks})",
            f"SELECT {TRACE_COLUMNS} FROM traces WHERE trace_id IN ({marks})",
        ):
            for raw in connection.execute(query, chunk):
                trace = trace_from(raw)
                if _in_session(trace, key) and trace.span_count > 0:
                    found[trace.trace_id] = trace
    return list(found.values())


def _in_session(trace: TraceRow, key: SessionKey) -> bool:
    return trace.session_id == key.session_id and (trace.workflow or NO_WORKFLOW) == key.workflow
