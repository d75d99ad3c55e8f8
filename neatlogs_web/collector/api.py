"""The JSON API the page uses, stable so scripts and tests can use it too.

Routes: `GET /api/sessions`, `GET /api/sessions/{session_id}`, `GET /api/traces`
(`?session=none` for traces in no session) and `GET /api/traces/{trace_id}`. Times are
RFC 3339 UTC with microseconds; durations are milliseconds. Lists page with an opaque
cursor returned as `next` (null on the last page): newest-first lists take it back as
`before`, a session's traces, oldest first, as `after`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .otlp import SPAN_KINDS, STATUS_CODES, Span
from .store import SessionRow, Store, TokenTotals, TraceRow

RowT = TypeVar("RowT", SessionRow, TraceRow)

DEFAULT_LIMIT = 50
#: A session's turns per page: enough for most conversations in one answer.
SESSION_TRACES_LIMIT = 200
MAX_LIMIT = 500


class BadQuery(ValueError):
    """A query parameter is invalid; answered with 400 and this message."""


class Api:
    """Handlers over one store; Starlette runs these sync handlers in its thread pool."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def routes(self) -> list[Route]:
        """The API's routes; session ids may contain "/", hence the path converter."""
        return [
            Route("/api/sessions", self.list_sessions, methods=["GET"]),
            Route("/api/sessions/{session_id:path}", self.get_session, methods=["GET"]),
            Route("/api/traces", self.list_traces, methods=["GET"]),
            Route("/api/traces/{trace_id}", self.get_trace, methods=["GET"]),
        ]

    def list_sessions(self, request: Request) -> JSONResponse:
        """Sessions by last activity, newest first; `q` searches ids and span names."""
        params = request.query_params
        try:
            limit = _limit(params.get("limit"))
            before = _decode_cursor(params.get("before"))
        except BadQuery as exc:
            return _error(400, str(exc))
        rows = self._store.sessions(
            limit=limit + 1,
            query=params.get("q") or None,
            workflow=params.get("workflow") or None,
            before=before,
        )
        page, cursor = _page(rows, limit, _session_key)
        return JSONResponse({"sessions": [session_json(row) for row in page], "next": cursor})

    def get_session(self, request: Request) -> JSONResponse:
        """One session with a page of its traces (turns) in time order."""
        session_id: str = request.path_params["session_id"]
        params = request.query_params
        try:
            limit = _limit(params.get("limit"), SESSION_TRACES_LIMIT)
            after = _decode_cursor(params.get("after"), "after")
        except BadQuery as exc:
            return _error(400, str(exc))
        found = self._store.session(session_id, limit=limit + 1, after=after)
        if found is None:
            return _error(404, f"no session {session_id!r}")
        row, traces = found
        page, cursor = _page(traces, limit, _trace_key)
        return JSONResponse(
            {**session_json(row), "traces": [trace_json(t) for t in page], "next": cursor}
        )

    def list_traces(self, request: Request) -> JSONResponse:
        """Traces by start, newest first; `session=none` keeps those in no session."""
        params = request.query_params
        session = params.get("session")
        try:
            limit = _limit(params.get("limit"))
            before = _decode_cursor(params.get("before"))
            if session not in (None, "none"):
                raise BadQuery("session must be 'none'; a session's traces are at /api/sessions/ID")
        except BadQuery as exc:
            return _error(400, str(exc))
        rows = self._store.traces(limit=limit + 1, without_session=session == "none", before=before)
        page, cursor = _page(rows, limit, _trace_key)
        return JSONResponse({"traces": [trace_json(row) for row in page], "next": cursor})

    def get_trace(self, request: Request) -> JSONResponse:
        """One trace with every span (the neatlogs completion marker left out)."""
        trace_id: str = request.path_params["trace_id"].lower()
        found = self._store.trace(trace_id)
        if found is None:
            return _error(404, f"no trace {trace_id!r}")
        row, spans = found
        return JSONResponse({**trace_json(row), "spans": [span_json(span) for span in spans]})


def session_json(row: SessionRow) -> dict[str, Any]:
    """A session as the API shows it."""
    return {
        "session_id": row.session_id,
        "workflow": row.workflow,
        "trace_count": row.trace_count,
        "span_count": row.span_count,
        "error_count": row.error_count,
        "first_seen": rfc3339(row.first_ns),
        "last_seen": rfc3339(row.last_ns),
        "duration_ms": _ms(row.last_ns - row.first_ns),
        "tokens": _tokens(row.tokens),
    }


def trace_json(row: TraceRow) -> dict[str, Any]:
    """A trace's summary as the API shows it."""
    return {
        "trace_id": row.trace_id,
        "session_id": row.session_id,
        "workflow": row.workflow,
        "name": row.name,
        "start": rfc3339(row.start_ns),
        "end": rfc3339(row.end_ns),
        "duration_ms": _ms(row.end_ns - row.start_ns),
        "status": _name(STATUS_CODES, row.status_code),
        "span_count": row.span_count,
        "error_count": row.error_count,
        "tokens": _tokens(row.tokens),
        "complete": row.complete,
    }


def span_json(span: Span) -> dict[str, Any]:
    """A span as the API shows it; ids are lowercase hex, as in OTLP JSON."""
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": _name(SPAN_KINDS, span.kind),
        "start": rfc3339(span.start_ns),
        "end": rfc3339(span.end_ns),
        "duration_ms": _ms(span.end_ns - span.start_ns),
        "status": {
            "code": _name(STATUS_CODES, span.status_code),
            "message": span.status_message,
        },
        "attributes": span.attributes,
        "events": [
            {"name": e["name"], "time": rfc3339(e["time_ns"]), "attributes": e["attributes"]}
            for e in span.events
        ],
        "links": span.links,
        "resource": span.resource,
        "scope": span.scope,
    }


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC with microseconds."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def _name(names: tuple[str, ...], code: int) -> str:
    """An OTLP enum's name; a code from a newer OTLP version reads as the default (0)."""
    return names[code] if 0 <= code < len(names) else names[0]


def _ms(ns: int) -> float:
    return round(ns / 1_000_000, 3)


def _tokens(tokens: TokenTotals) -> dict[str, int | None] | None:
    if tokens.input is None and tokens.output is None and tokens.total is None:
        return None
    return {"input": tokens.input, "output": tokens.output, "total": tokens.total}


def _limit(raw: str | None, default: int = DEFAULT_LIMIT) -> int:
    if raw is None or raw == "":
        return default
    # isdigit() alone takes "²" and other Unicode digits that int() reads differently.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _page(
    rows: list[RowT], limit: int, key: Callable[[RowT], tuple[int, str]]
) -> tuple[list[RowT], str | None]:
    """The first ``limit`` rows (fetched ``limit + 1``), and the ``next`` cursor: the
    last row's ``key``, encoded, or ``None`` when this is the last page."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    ns, name = key(page[-1])
    return page, base64.urlsafe_b64encode(f"{ns}:{name}".encode()).decode()


def _session_key(row: SessionRow) -> tuple[int, str]:
    """Where a sessions page (newest activity first) ends."""
    return row.last_ns, row.session_id


def _trace_key(row: TraceRow) -> tuple[int, str]:
    """Where a traces page (by start, either direction) ends."""
    return row.start_ns, row.trace_id


def _decode_cursor(raw: str | None, name: str = "before") -> tuple[int, str] | None:
    if not raw:
        return None
    try:
        ns_text, key = base64.urlsafe_b64decode(raw.encode()).decode().split(":", 1)
        ns = int(ns_text)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise BadQuery(f"{name} must be a 'next' value from a previous answer") from exc
    if not 0 <= ns < 2**63:  # what SQLite's integers hold; stored times are capped below
        raise BadQuery(f"{name} must be a 'next' value from a previous answer")
    return ns, key


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code)
