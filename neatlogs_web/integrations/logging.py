"""A logging filter that puts the session and trace ids on every record.

Logs of a multi-user server interleave every user's requests; with the
session id on each line, one conversation's logs can be pulled out, and the
trace and span ids join a log line to the exact span in the trace view.
"""

from __future__ import annotations

import logging

from opentelemetry import trace as otel_trace

from neatlogs_web._session.binding import current_end_user_id, current_session_id

__all__ = ["SessionLogFilter"]


class SessionLogFilter(logging.Filter):
    """Adds ``session_id``, ``end_user_id``, ``trace_id`` and ``span_id`` to records.

    Each is ``default`` (``"-"``) when unknown, so format strings never fail;
    ids are the 32- and 16-digit hex forms backends show. Attach it to a
    handler (logger filters do not see records propagated from child
    loggers); from ``dictConfig``::

        "filters": {"session": {"()": "neatlogs_web.integrations.logging.SessionLogFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["session"]}},

    It never drops a record.
    """

    def __init__(self, name: str = "", default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        default = self.default
        record.session_id = current_session_id() or default
        record.end_user_id = current_end_user_id() or default
        context = otel_trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        else:
            record.trace_id = record.span_id = default
        return True
