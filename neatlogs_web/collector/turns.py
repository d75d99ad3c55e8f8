"""What counts as a user's turn, and a session's traces folded into conversation entries.

A user turn is a trace with at least one span of the app's own: a trace of HTTP
transport spans alone is a request. A turn without input of its own that links to
the same request as an earlier turn is that turn's background work (a summary traced
after the response), part of it and not a turn of its own. The session summary counts
turns by this rule in SQL (`FOLLOW_UP`) and a session's page folds them by it in
Python (`fold`): the two live here so they stay one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from .felt import Judgment
from .summaries import SessionRow, TraceRow

#: SQL: trace `t` is background work of an earlier turn of its session.
FOLLOW_UP = """
t.app_spans > 0 AND t.input IS NULL AND t.link_trace IS NOT NULL AND EXISTS (
    SELECT 1 FROM traces AS o
    WHERE o.link_trace = t.link_trace AND o.session_id = t.session_id
      AND o.workflow = t.workflow
      AND o.app_spans > 0 AND o.span_count > 0
      AND (o.start_ns, o.trace_id) < (t.start_ns, t.trace_id))
"""


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
    (the last trace read), or None on the last page. `judgments` are the latest of each
    entry's turn, latest first, by trace id."""

    session: SessionRow
    entries: list[Entry]
    next_key: tuple[int, str] | None
    judgments: dict[str, list[Judgment]]


def fold(traces: list[TraceRow], relatives: list[TraceRow]) -> list[Entry]:
    """A page of traces as conversation entries; `relatives` are the session's other
    traces that share a request with them, wherever they are in the session.

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
