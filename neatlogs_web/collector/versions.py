"""The database's schema version: the tables are created in an empty file, upgraded in
place from an earlier version, and anything else is left untouched.

Version 2 kept one session per session id, whichever app sent it; version 3 keeps one
per session id and workflow. Version 4 reads what the person felt: the felt-latency
figures on a turn, and feedback spans as judgments of their turn rather than spans of
it (version 3 counted them as spans and stretched the turn's end to them). The spans an
earlier version stored hold all that, so an upgrade reads the figures and the
judgments from them, sets the trace rows right and sums the sessions again from the
trace rows, in one transaction: if it fails, the file is as it was. A collector of an
earlier version refuses a newer file, as it refuses any file it did not write.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict

from neatlogs_web._tracing.feedback import FEEDBACK_SPAN_NAME

from . import felt, grouping
from .decoders import SPAN_SELECT, span_from
from .rows import INSERT_FEEDBACK, feedback_row
from .schema import FEEDBACK_TABLE, FELT_COLUMNS, SCHEMA_VERSION, SESSION_TABLES, SPAN_TABLES
from .session_summary import SUM_EVERY_SESSION
from .summaries import NO_WORKFLOW

#: The earlier versions this code upgrades.
UPGRADABLE_VERSIONS = (2, 3)

# Version 2 filed a trace without a workflow under NULL.
_FROM_2 = f"UPDATE traces SET workflow = '{NO_WORKFLOW}' WHERE workflow IS NULL;"

# Version 3's trace rows: the completion marker's column named for what it is, and the
# columns of what the person felt.
_FROM_3 = "".join(
    [
        "ALTER TABLE traces RENAME COLUMN complete TO neatlogs_complete;",
        *(f"ALTER TABLE traces ADD COLUMN {column.strip()};" for column in FELT_COLUMNS.split(",")),
        FEEDBACK_TABLE,
    ]
)

# The sessions, built again (empty) once the trace rows are this version's.
_SESSIONS_AGAIN = f"DROP TABLE sessions; DROP INDEX traces_by_session; {SESSION_TABLES}"


def create_or_upgrade(connection: sqlite3.Connection) -> bool:
    """Make the database this code's version: create the tables in an empty one, upgrade
    one of `UPGRADABLE_VERSIONS`; False for any other file, which must not be touched."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return True
    if version in UPGRADABLE_VERSIONS:
        _upgrade(connection, version)
        return True
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if version != 0 or tables:
        return False
    _in_one_transaction(connection, SPAN_TABLES + SESSION_TABLES)
    return True


def _upgrade(connection: sqlite3.Connection, version: int) -> None:
    """Upgrade a database of `version` to this one, all or nothing."""
    script = (_FROM_2 if version == 2 else "") + _FROM_3 + _SESSIONS_AGAIN
    try:
        # executescript commits a transaction it finds open, never one it opens.
        connection.executescript(f"BEGIN IMMEDIATE; {script}")
        _read_response_figures(connection)
        _read_judgments(connection)
        connection.execute(
            "UPDATE traces SET turn_wait_ns = time_to_first_chunk_ns"
            " WHERE app_spans > 0 AND time_to_first_chunk_ns IS NOT NULL"
        )
        connection.execute(SUM_EVERY_SESSION)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _read_response_figures(connection: sqlite3.Connection) -> None:
    """Each trace's felt-latency figures, from its stored root span."""
    rows = connection.execute(
        "SELECT t.trace_id, s.attributes FROM traces AS t JOIN spans AS s"
        " ON s.trace_id = t.trace_id AND s.span_id = t.root_span_id"
        " WHERE instr(s.attributes, '\"neatlogs.response.')"
    ).fetchall()
    updates = []
    for trace_id, attributes in rows:
        figures = felt.response_figures(json.loads(attributes))
        if figures is not None:
            updates.append((*figures, trace_id))
    connection.executemany(
        "UPDATE traces SET time_to_start_ns = ?, time_to_first_chunk_ns = ?,"
        " response_duration_ns = ?, response_complete = ? WHERE trace_id = ?",
        updates,
    )


def _read_judgments(connection: sqlite3.Connection) -> None:
    """Feedback spans stored as spans of their turn: kept as judgments, and taken out of
    the turn's span counts and times."""
    spans = [
        span
        for span in map(
            span_from,
            connection.execute(
                f"{SPAN_SELECT} WHERE s.name = ? AND NOT s.marker", (FEEDBACK_SPAN_NAME,)
            ),
        )
        if felt.is_feedback(span)
    ]
    if not spans:
        return
    connection.executemany(
        "UPDATE spans SET marker = 1 WHERE trace_id = ? AND span_id = ?",
        [(span.trace_id, span.span_id) for span in spans],
    )
    judgments = [felt.judgment_of(span) for span in spans]
    connection.executemany(INSERT_FEEDBACK, [feedback_row(judgment) for judgment in judgments])
    counted: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for span, judgment in zip(spans, judgments, strict=True):
        counts = counted[span.trace_id]
        counts[0] += not grouping.is_transport(span)
        counts[1] += judgment.thumb == "up"
        counts[2] += judgment.thumb == "down"
        counts[3] += 1
    connection.executemany(
        "UPDATE traces SET span_count = span_count - ?4, app_spans = max(app_spans - ?1, 0),"
        " feedback_up = ?2, feedback_down = ?3, feedback_count = ?4,"
        " start_ns = (SELECT min(start_ns) FROM spans WHERE trace_id = ?5 AND NOT marker),"
        " end_ns = (SELECT max(end_ns) FROM spans WHERE trace_id = ?5 AND NOT marker)"
        " WHERE trace_id = ?5",
        [(*counts, trace_id) for trace_id, counts in counted.items()],
    )


def _in_one_transaction(connection: sqlite3.Connection, script: str) -> None:
    """Run `script` and set this version, all or nothing."""
    try:
        connection.executescript(
            f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        )
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
