"""The JSON API the page uses, stable so scripts and tests can use it too.

Routes: `GET /api/sessions`, `GET /api/sessions/{session_id}`, `GET /api/traces`
(`?session=none` for traces in no session), `GET /api/traces/{trace_id}` and
`GET /api/facets` (the end users and workflows to filter by). Times are RFC 3339 UTC
with microseconds; durations are milliseconds. Lists page with an opaque cursor
returned as `next` (null on the last page): newest-first lists take it back as
`before`, a session's traces, oldest first, as `after`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import grouping
from .limits import MAX_ANSWER_BYTES, MAX_NAME
from .otlp import SPAN_KINDS, STATUS_CODES, Span
from .store import Entry, SessionFilter, SessionRow, Store, TokenTotals, TraceRow

RowT = TypeVar("RowT", SessionRow, TraceRow)
ItemT = TypeVar("ItemT")

DEFAULT_LIMIT = 50
#: A session's turns per page: enough for most conversations in one answer.
SESSION_TRACES_LIMIT = 200
MAX_LIMIT = 500
#: Sessions without a turn are counted up to this many for the page's toggle.
COUNT_CAP = 1000
FACETS_LIMIT = 200
#: Background traces shown per turn; `parts_omitted` counts the others.
PARTS_LIMIT = 100
#: Search text, filters and ids: every session id, end user and workflow the store
#: files traces under fits (they are cut to this length at ingest).
TEXT_LIMIT = MAX_NAME
_LIMIT_DIGITS = len(str(MAX_LIMIT))


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
            Route("/api/facets", self.get_facets, methods=["GET"]),
        ]

    def list_sessions(self, request: Request) -> JSONResponse:
        """Sessions by last activity, newest first, filtered by the query parameters:
        `q` (search), `workflow`, `user`, `errors`, `since`, `until` and `turns` (only
        sessions with a user turn; the answer then counts the others as
        `without_turns`)."""
        params = request.query_params
        try:
            limit = _limit(params.get("limit"))
            before = _decode_cursor(params.get("before"))
            where = SessionFilter(
                query=_text(params, "q"),
                workflow=_text(params, "workflow"),
                end_user=_text(params, "user"),
                with_turns=_flag(params, "turns"),
                errors=_flag(params, "errors"),
                since_ns=_time(params, "since"),
                until_ns=_time(params, "until"),
            )
        except BadQuery as exc:
            return _error(400, str(exc))
        rows = self._store.sessions(limit=limit + 1, where=where, before=before)
        page, cursor = _page(rows, limit, _session_key)
        answer: dict[str, Any] = {
            "sessions": [session_json(row) for row in page],
            "next": cursor,
        }
        if where.with_turns:
            others = dataclasses.replace(where, with_turns=False)
            every = self._store.count_sessions(others, cap=COUNT_CAP)
            with_turns = self._store.count_sessions(where, cap=COUNT_CAP)
            answer["without_turns"] = max(every - with_turns, 0)
        return JSONResponse(answer)

    def get_session(self, request: Request) -> Response:
        """One session with a page of its conversation: user turns (each with the
        request that carried it and its background work) and requests no turn claims,
        in time order."""
        session_id: str = request.path_params["session_id"]
        params = request.query_params
        try:
            _check_length(session_id, "session id")
            limit = _limit(params.get("limit"), SESSION_TRACES_LIMIT)
            after = _decode_cursor(params.get("after"), "after")
        except BadQuery as exc:
            return _error(400, str(exc))
        found = self._store.session(session_id, limit=limit, after=after)
        if found is None:
            return _error(404, f"no session {session_id!r}")
        entries, left_out = _within_budget(found.entries, entry_json)
        next_key = found.next_key
        if left_out:
            # The page ends early; the next one starts after its last entry's turn.
            next_key = _trace_key(found.entries[len(entries) - 1].trace)
        fields = {**session_json(found.session), "next": _cursor(next_key)}
        return _answer(fields, "traces", entries)

    def get_facets(self, request: Request) -> JSONResponse:
        """The end users and workflows seen, for the page's filters."""
        users, workflows = self._store.facets(limit=FACETS_LIMIT)
        return JSONResponse({"users": users, "workflows": workflows})

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

    def get_trace(self, request: Request) -> Response:
        """One trace with its spans by start time (the neatlogs completion marker left
        out), as many as `MAX_ANSWER_BYTES` holds; `spans_omitted` counts the rest."""
        trace_id: str = request.path_params["trace_id"].lower()
        try:
            _check_length(trace_id, "trace id")
        except BadQuery as exc:
            return _error(400, str(exc))
        found = self._store.trace(trace_id, max_bytes=MAX_ANSWER_BYTES)
        if found is None:
            return _error(404, f"no trace {trace_id!r}")
        row, spans = found
        encoded, _ = _within_budget(spans, span_json)
        fields = {**trace_json(row), "spans_omitted": row.span_count - len(encoded)}
        return _answer(fields, "spans", encoded)


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
        "turn_count": row.turn_count,
        "end_user": row.end_user,
        "first_input": row.first_input,
        "last_output": row.last_output,
    }


def entry_json(entry: Entry) -> dict[str, Any]:
    """A row of a session's conversation: a turn, or a request no turn claims."""
    answer = trace_json(entry.trace)
    answer["request"] = trace_json(entry.request) if entry.request is not None else None
    answer["parts"] = [trace_json(part) for part in entry.parts[:PARTS_LIMIT]]
    answer["parts_omitted"] = max(len(entry.parts) - PARTS_LIMIT, 0)
    return answer


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
        "turn": row.turn,
        "input": row.input,
        "output": row.output,
        "end_user": row.end_user,
        "http_status": row.http_status,
    }


def span_json(span: Span) -> dict[str, Any]:
    """A span as the API shows it; ids are lowercase hex, as in OTLP JSON.

    Beside the span as sent: `ai_kind` (LLM, TOOL, RETRIEVER, ... or null), `input`
    and `output` text, and `messages` ({"input": [...], "output": [...]} of
    {"role", "content"}, or null), read from whichever convention the sender used.
    """
    talk = grouping.conversation_of(span) if grouping.may_converse(span) else None
    messages = None
    if talk is not None and (talk.input_messages or talk.output_messages):
        messages = {
            "input": [{"role": m.role, "content": m.content} for m in talk.input_messages],
            "output": [{"role": m.role, "content": m.content} for m in talk.output_messages],
        }
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
        "ai_kind": grouping.ai_kind_of(span),
        "input": talk.input if talk is not None else None,
        "output": talk.output if talk is not None else None,
        "messages": messages,
    }


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC with microseconds."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_utc_seconds(seconds)}.{rest // 1000:06d}Z"


@functools.lru_cache(maxsize=4096)
def _utc_seconds(seconds: int) -> str:
    # A trace's start and end, and neighbouring turns, often share a second: formatting
    # it once saves a strftime per time on a page of hundreds.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


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
    # isdigit() alone takes "²" and other Unicode digits that int() reads differently;
    # int() refuses thousands of digits.
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw.lstrip("0")) > _LIMIT_DIGITS
        or not 1 <= int(raw) <= MAX_LIMIT
    ):
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _text(params: Any, name: str) -> str | None:
    """A text parameter, None when empty."""
    raw: str | None = params.get(name) or None
    if raw is not None:
        _check_length(raw, name)
    return raw


def _check_length(raw: str, name: str) -> None:
    # SQLite refuses a LIKE pattern past 50,000 bytes; no stored key is longer than this.
    if len(raw) > TEXT_LIMIT:
        raise BadQuery(f"{name} must be at most {TEXT_LIMIT} characters, not {len(raw)}")


# The encoding JSONResponse uses, so that pieces encoded apart join into one answer.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _within_budget(
    items: Iterable[ItemT], to_json: Callable[[ItemT], dict[str, Any]]
) -> tuple[list[bytes], bool]:
    """Each item's JSON, in order, while they fit in `MAX_ANSWER_BYTES` (the first
    always does, so an answer is never empty); and whether items were left out."""
    encoded: list[bytes] = []
    size = 0
    for item in items:
        data = _ENCODER.encode(to_json(item)).encode()
        size += len(data) + 1  # and its comma
        if encoded and size > MAX_ANSWER_BYTES:
            return encoded, True
        encoded.append(data)
    return encoded, False


def _answer(fields: dict[str, Any], key: str, encoded: list[bytes]) -> Response:
    """The JSON object of `fields` with the already encoded items under `key`."""
    head = _ENCODER.encode(fields).encode()
    body = b"".join((head[:-1], f',"{key}":['.encode(), b",".join(encoded), b"]}"))
    return Response(body, media_type="application/json")


def _page(
    rows: list[RowT], limit: int, key: Callable[[RowT], tuple[int, str]]
) -> tuple[list[RowT], str | None]:
    """The first ``limit`` rows (fetched ``limit + 1``), and the ``next`` cursor: the
    last row's ``key``, encoded, or ``None`` when this is the last page."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, _cursor(key(page[-1]))


def _cursor(key: tuple[int, str] | None) -> str | None:
    """A row key as the opaque `next` value, or None."""
    if key is None:
        return None
    ns, name = key
    return base64.urlsafe_b64encode(f"{ns}:{name}".encode()).decode()


def _flag(params: Any, name: str) -> bool:
    raw = params.get(name, "")
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise BadQuery(f"{name} must be 1 or 0")


def _time(params: Any, name: str) -> int | None:
    """An RFC 3339 time parameter as nanoseconds since the epoch."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadQuery(f"{name} must be an RFC 3339 time, such as 2025-01-31T12:00:00Z") from exc
    if moment.tzinfo is None:
        raise BadQuery(f"{name} must say its time zone, such as 2025-01-31T12:00:00Z")
    seconds = moment.timestamp()
    if not 0 <= seconds < 2**63 / 1e9:
        raise BadQuery(f"{name} is out of range")
    return int(seconds * 1_000_000) * 1000


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
