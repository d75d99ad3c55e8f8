"""A session's summary row, summed again from its trace rows.

A session is keyed by its id and its workflow, so the same conversation id sent by two
apps makes two rows. Ingest sums the sessions a batch touched, one query each; the
schema upgrade sums every session at once with the same expressions.
"""

from __future__ import annotations

from .schema import SESSION_COLUMNS
from .turns import FOLLOW_UP

# Counts and times summed; the end user the last trace's; the first input and the last
# output those of its turns; the judgments counted; the worst wait for the first words
# and how many turns measured one. Correlated subqueries read `t`'s session key, which
# is constant within a group.
_SUMS = f"""
SELECT
    session_id,
    workflow,
    count(*) AS trace_count, sum(span_count) AS span_count,
    sum(error_count) AS error_count, min(start_ns) AS first_ns, max(end_ns) AS last_ns,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    sum(app_spans > 0) - sum(CASE WHEN {FOLLOW_UP} THEN 1 ELSE 0 END) AS turn_count,
    (SELECT w.end_user FROM traces AS w
      WHERE w.session_id = t.session_id AND w.workflow = t.workflow
        AND w.span_count > 0 AND w.end_user IS NOT NULL
      ORDER BY w.start_ns DESC LIMIT 1) AS end_user,
    (SELECT w.input FROM traces AS w
      WHERE w.session_id = t.session_id AND w.workflow = t.workflow
        AND w.span_count > 0 AND w.app_spans > 0 AND w.input IS NOT NULL
      ORDER BY w.start_ns, w.trace_id LIMIT 1) AS first_input,
    (SELECT w.output FROM traces AS w
      WHERE w.session_id = t.session_id AND w.workflow = t.workflow
        AND w.span_count > 0 AND w.app_spans > 0 AND w.output IS NOT NULL
      ORDER BY w.start_ns DESC, w.trace_id DESC LIMIT 1) AS last_output,
    max(turn_wait_ns) AS wait_worst_ns,
    count(turn_wait_ns) AS waits,
    sum(feedback_up) AS feedback_up, sum(feedback_down) AS feedback_down,
    sum(feedback_count) AS feedback_count
FROM traces AS t
"""

# The median of a session's turns' waits, from `s`, a row of `_SUMS`: the middle one or
# two of them, read in order from the session's wait index.
_MEDIAN_WAIT = """
(SELECT CAST(round(avg(wait)) AS INTEGER) FROM (
    SELECT w.turn_wait_ns AS wait, row_number() OVER (ORDER BY w.turn_wait_ns) AS rank
    FROM traces AS w
    WHERE w.session_id = s.session_id AND w.workflow = s.workflow
      AND w.turn_wait_ns IS NOT NULL)
  WHERE rank BETWEEN (s.waits + 1) / 2 AND s.waits / 2 + 1)
"""


def _summed(where: str) -> str:
    """The sessions rows `_SUMS` gives for the traces `where` keeps, with their median
    wait, ready to insert."""
    columns = SESSION_COLUMNS.replace("wait_median_ns", _MEDIAN_WAIT)
    return f"""
INSERT INTO sessions ({SESSION_COLUMNS})
SELECT {columns} FROM ({_SUMS} WHERE {where} GROUP BY session_id, workflow) AS s
"""


#: One session's row from its traces; parameters: session id, workflow. Nothing is
#: written when no trace of the session holds a span.
SUM_SESSION = _summed("session_id = ? AND workflow = ? AND span_count > 0")

#: Every session's row from the traces: what an upgraded database starts from.
SUM_EVERY_SESSION = _summed("session_id IS NOT NULL AND span_count > 0")

#: Removes a session's row before `SUM_SESSION` writes it again.
DELETE_SESSION = "DELETE FROM sessions WHERE session_id = ? AND workflow = ?"
