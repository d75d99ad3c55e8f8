"""A session's summary row, summed again from its trace rows.

A session is keyed by its id and its workflow, so the same conversation id sent by two
apps makes two rows. Ingest sums the sessions a batch touched, one query each; the
schema upgrade sums every session at once with the same expressions.
"""

from __future__ import annotations

from .schema import SESSION_COLUMNS
from .turns import FOLLOW_UP

# Counts and times summed; the end user the last trace's; the first input and the last
# output those of its turns; the median and the worst wait for the first words over its
# turns that measured it; the judgments counted. Correlated subqueries read `t`'s
# session key, which is constant within a group.
_SUMS = f"""
SELECT
    session_id,
    workflow,
    count(*), sum(span_count), sum(error_count), min(start_ns), max(end_ns),
    sum(input_tokens), sum(output_tokens), sum(total_tokens),
    sum(app_spans > 0) - sum(CASE WHEN {FOLLOW_UP} THEN 1 ELSE 0 END),
    (SELECT w.end_user FROM traces AS w
      WHERE w.session_id = t.session_id AND w.workflow = t.workflow
        AND w.span_count > 0 AND w.end_user IS NOT NULL
      ORDER BY w.start_ns DESC LIMIT 1),
    (SELECT w.input FROM traces AS w
      WHERE w.session_id = t.session_id AND w.workflow = t.workflow
        AND w.span_count > 0 AND w.app_spans > 0 AND w.input IS NOT NULL
      ORDER BY w.start_ns, w.trace_id LIMIT 1),
    (SELECT w.output FROM traces AS w
      WHERE w.session_id = t.session_id AND w.workflow = t.workflow
        AND w.span_count > 0 AND w.app_spans > 0 AND w.output IS NOT NULL
      ORDER BY w.start_ns DESC, w.trace_id DESC LIMIT 1),
    CASE WHEN count(CASE WHEN app_spans > 0 THEN time_to_first_chunk_ns END) > 0 THEN
    (SELECT CAST(round(avg(wait)) AS INTEGER) FROM (
        SELECT w.time_to_first_chunk_ns AS wait,
            row_number() OVER (ORDER BY w.time_to_first_chunk_ns) AS rank,
            count(*) OVER () AS waits
        FROM traces AS w
        WHERE w.session_id = t.session_id AND w.workflow = t.workflow
          AND w.span_count > 0 AND w.app_spans > 0 AND w.time_to_first_chunk_ns IS NOT NULL)
      WHERE rank BETWEEN (waits + 1) / 2 AND waits / 2 + 1)
    END,
    max(CASE WHEN app_spans > 0 THEN time_to_first_chunk_ns END),
    sum(feedback_up), sum(feedback_down), sum(feedback_count)
FROM traces AS t
"""

#: One session's row from its traces; parameters: session id, workflow. Nothing is
#: written when no trace of the session holds a span.
SUM_SESSION = f"""
INSERT INTO sessions ({SESSION_COLUMNS})
{_SUMS}
WHERE session_id = ? AND workflow = ? AND span_count > 0
GROUP BY session_id, workflow
"""

#: Every session's row from the traces: what an upgraded database starts from.
SUM_EVERY_SESSION = f"""
INSERT INTO sessions ({SESSION_COLUMNS})
{_SUMS}
WHERE session_id IS NOT NULL AND span_count > 0
GROUP BY session_id, workflow
"""

#: Removes a session's row before `SUM_SESSION` writes it again.
DELETE_SESSION = "DELETE FROM sessions WHERE session_id = ? AND workflow = ?"
