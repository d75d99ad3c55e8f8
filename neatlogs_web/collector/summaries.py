"""The session and trace summaries the store answers with, and the sessions list's filter.

The page lists sessions and shows a session's traces far more often than spans arrive,
so it reads these summaries, kept at ingest, and only a trace's own page reads spans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from .felt import ResponseFigures, Thumb

#: The workflow of a trace whose resource names none: stored as "" so that a session's
#: key, its index and its paging cursor never hold NULL; shown as null.
NO_WORKFLOW = ""

#: The sessions list's orders: by last activity, newest first; or by the longest wait
#: for the first words of an answer (a session's worst), longest first, which lists only
#: sessions whose turns measured it.
SessionOrder = Literal["recent", "wait"]


class SessionKey(NamedTuple):
    """What names a session: its id within its workflow. Two apps that both call a
    conversation "conv-1" have two sessions, as Phoenix keeps one per project."""

    session_id: str
    workflow: str


@dataclass(slots=True)  # not frozen, as TraceRow below
class TokenTotals:
    """Summed token usage; a count is None when no span reported it."""

    input: int | None
    output: int | None
    total: int | None


@dataclass(slots=True)  # not frozen, as TraceRow below
class FeedbackCounts:
    """Judgments counted: thumbs up, thumbs down, and all (a label or comment alone is
    neither up nor down)."""

    up: int
    down: int
    count: int


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
    #: The wait for the first words of an answer, over the turns that measured it.
    wait_median_ns: int | None
    wait_worst_ns: int | None
    feedback: FeedbackCounts

    @property
    def key(self) -> SessionKey:
        """The session's key; a session without a workflow has the empty one."""
        return SessionKey(self.session_id, self.workflow or NO_WORKFLOW)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which
# made building a session page's rows a third of its answer time. Read them only.
@dataclass(slots=True)
class TraceRow:
    """One trace's summary; markers and feedback spans are in neither its counts nor its
    times."""

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
    #: The neatlogs SDK's completion marker arrived (only sent to the neatlogs backend).
    neatlogs_complete: bool
    #: False for a request: a trace whose spans all describe HTTP transport.
    turn: bool
    #: The trace the root span links to: a turn's request.
    link_trace: str | None
    http_status: int | None
    end_user: str | None
    input: str | None
    output: str | None
    #: What the person waited for, from the root span; None when it carries no figures.
    response: ResponseFigures | None
    feedback: FeedbackCounts


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
    #: Only sessions with at least one judgment of this thumb.
    feedback: Thumb | None = None
    #: Only sessions active at or after / at or before these times (ns since epoch).
    since_ns: int | None = None
    until_ns: int | None = None


def session_clauses(where: SessionFilter) -> tuple[list[str], list[Any]]:
    """SQL conditions on the sessions table for a filter, and their parameters.

    The query matches session ids, end users, span names and short attribute values
    (through `span_terms`) and the turns' input and output: substring, ASCII
    case-insensitive.
    """
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
    if where.feedback is not None:
        clauses.append(f"feedback_{where.feedback} > 0")
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
            " OR (session_id, workflow) IN ("
            " SELECT t.session_id, t.workflow"
            " FROM span_terms AS n JOIN traces AS t USING (trace_id)"
            " WHERE n.term LIKE ? ESCAPE '\\' AND t.session_id IS NOT NULL)"
            " OR (session_id, workflow) IN ("
            " SELECT session_id, workflow FROM traces WHERE session_id IS NOT NULL"
            " AND (input LIKE ? ESCAPE '\\' OR output LIKE ? ESCAPE '\\')))"
        )
        params += [pattern] * 5
    return clauses, params
