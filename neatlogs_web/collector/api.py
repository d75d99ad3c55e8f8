"""The JSON API the page uses, stable so scripts and tests can use it too.

Routes: `GET /api/sessions`, `GET /api/sessions/{session_id}?workflow=NAME` (a session
is its id within its workflow; without `workflow`, the one session of that id, or 300
and the sessions to choose from), `GET /api/traces` (`?session=none` for traces in no
session), `GET /api/traces/{trace_id}` and `GET /api/facets` (the end users and
workflows to filter by). Times are RFC 3339 UTC with microseconds; durations are
milliseconds. Lists page with an opaque cursor returned as `next` (null on the last
page): newest-first lists take it back as `before`, a session's traces, oldest first,
as `after`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .api_json import entry_json, judgment_json, session_json, span_json, trace_json
from .api_params import (
    BadQuery,
    check_length,
    encode_cursor,
    read_cursor,
    read_flag,
    read_limit,
    read_order,
    read_session_cursor,
    read_text,
    read_thumb,
    read_time,
    read_workflow,
    session_cursor,
)
from .limits import MAX_ANSWER_BYTES
from .store import Store
from .summaries import SessionFilter, SessionKey, SessionOrder, SessionRow, TraceRow

RowT = TypeVar("RowT", SessionRow, TraceRow)
ItemT = TypeVar("ItemT")

#: A session's turns per page: enough for most conversations in one answer.
SESSION_TRACES_LIMIT = 200
#: Sessions without a turn are counted up to this many for the page's toggle.
COUNT_CAP = 1000
FACETS_LIMIT = 200
#: Workflows listed when a session id alone names sessions in several.
CHOICES_LIMIT = 200


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
        """Sessions by last activity, newest first, or with `sort=wait` by the longest
        wait for an answer's first words; filtered by the query parameters: `q`
        (search), `workflow`, `user`, `errors`, `feedback` (`negative` / `positive`:
        judged so at least once), `since`, `until` and `turns` (only sessions with a
        user turn; the answer then counts the others as `without_turns`)."""
        params = request.query_params
        try:
            limit = read_limit(params.get("limit"))
            order = read_order(params)
            before = read_session_cursor(params.get("before"), order)
            where = SessionFilter(
                query=read_text(params, "q"),
                workflow=read_text(params, "workflow"),
                end_user=read_text(params, "user"),
                with_turns=read_flag(params, "turns"),
                errors=read_flag(params, "errors"),
                feedback=read_thumb(params, "feedback"),
                since_ns=read_time(params, "since"),
                until_ns=read_time(params, "until"),
            )
        except BadQuery as exc:
            return _error(400, str(exc))
        rows = self._store.sessions(limit=limit + 1, where=where, before=before, order=order)
        page, cursor = _page(
            rows, limit, lambda row: session_cursor(_session_key(row, order), order)
        )
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
        in time order.

        `workflow` names the session's workflow (empty: a session without one). Without
        it, an id that names one session answers with it, and one that names sessions
        in several workflows answers 300 with them under `sessions`.
        """
        session_id: str = request.path_params["session_id"]
        params = request.query_params
        try:
            check_length(session_id, "session id")
            workflow = read_workflow(params)
            limit = read_limit(params.get("limit"), SESSION_TRACES_LIMIT)
            after = read_cursor(params.get("after"), "after")
        except BadQuery as exc:
            return _error(400, str(exc))
        if workflow is None:
            named = self._store.sessions_named(session_id, limit=CHOICES_LIMIT)
            if not named:
                return _error(404, f"no session {session_id!r}")
            if len(named) > 1:
                return _choices(session_id, named)
            key = named[0].key
        else:
            key = SessionKey(session_id, workflow)
        found = self._store.session(key, limit=limit, after=after)
        if found is None:
            return _error(404, f"no session {session_id!r} in workflow {key.workflow!r}")
        head = session_json(found.session)
        to_json = functools.partial(entry_json, judgments=found.judgments)
        entries, left_out = _within_budget(found.entries, to_json, _room_beside(head))
        next_key = found.next_key
        if left_out:
            # The page ends early; the next one starts after its last entry's turn.
            next_key = _trace_key(found.entries[len(entries) - 1].trace)
        return _answer({**head, "next": encode_cursor(next_key)}, "traces", entries)

    def get_facets(self, request: Request) -> JSONResponse:
        """The end users and workflows seen, for the page's filters."""
        users, workflows = self._store.facets(limit=FACETS_LIMIT)
        return JSONResponse({"users": users, "workflows": workflows})

    def list_traces(self, request: Request) -> JSONResponse:
        """Traces by start, newest first; `session=none` keeps those in no session."""
        params = request.query_params
        session = params.get("session")
        try:
            limit = read_limit(params.get("limit"))
            before = read_cursor(params.get("before"))
            if session not in (None, "none"):
                raise BadQuery("session must be 'none'; a session's traces are at /api/sessions/ID")
        except BadQuery as exc:
            return _error(400, str(exc))
        rows = self._store.traces(limit=limit + 1, without_session=session == "none", before=before)
        page, cursor = _page(rows, limit, lambda row: encode_cursor(_trace_key(row)))
        return JSONResponse({"traces": [trace_json(row) for row in page], "next": cursor})

    def get_trace(self, request: Request) -> Response:
        """One trace with its spans by start time (the neatlogs completion marker and
        feedback spans left out), as many as `MAX_ANSWER_BYTES` holds; `spans_omitted`
        counts the rest. Its latest `judgments` come beside them, and
        `neatlogs_trace_complete` says whether the neatlogs SDK's completion marker
        arrived (sent with `backend="neatlogs"` only)."""
        trace_id: str = request.path_params["trace_id"].lower()
        try:
            check_length(trace_id, "trace id")
        except BadQuery as exc:
            return _error(400, str(exc))
        found = self._store.trace(trace_id, max_bytes=MAX_ANSWER_BYTES)
        if found is None:
            return _error(404, f"no trace {trace_id!r}")
        row, spans, judgments = found
        head = {
            **trace_json(row),
            "neatlogs_trace_complete": row.neatlogs_complete,
            "judgments": [judgment_json(judgment) for judgment in judgments],
        }
        encoded, _ = _within_budget(spans, span_json, _room_beside(head))
        fields = {**head, "spans_omitted": row.span_count - len(encoded)}
        return _answer(fields, "spans", encoded)


# The encoding JSONResponse uses, so that pieces encoded apart join into one answer.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


#: Room kept for what an answer adds after its items are encoded: a cursor, a count.
_TAIL_BYTES = 1024


def _room_beside(head: dict[str, Any]) -> int:
    """What an answer's items may take beside ``head`` within `MAX_ANSWER_BYTES`."""
    return MAX_ANSWER_BYTES - len(_ENCODER.encode(head).encode()) - _TAIL_BYTES


def _within_budget(
    items: Iterable[ItemT], to_json: Callable[[ItemT], dict[str, Any]], budget: int
) -> tuple[list[bytes], bool]:
    """Each item's JSON, in order, while they fit in ``budget`` bytes (the first always
    does, so an answer is never empty); and whether items were left out."""
    encoded: list[bytes] = []
    size = 0
    for item in items:
        data = _ENCODER.encode(to_json(item)).encode()
        size += len(data) + 1  # and its comma
        if encoded and size > budget:
            return encoded, True
        encoded.append(data)
    return encoded, False


def _answer(fields: dict[str, Any], key: str, encoded: list[bytes]) -> Response:
    """The JSON object of `fields` with the already encoded items under `key`."""
    head = _ENCODER.encode(fields).encode()
    body = b"".join((head[:-1], f',"{key}":['.encode(), b",".join(encoded), b"]}"))
    return Response(body, media_type="application/json")


def _page(
    rows: list[RowT], limit: int, cursor: Callable[[RowT], str | None]
) -> tuple[list[RowT], str | None]:
    """The first ``limit`` rows (fetched ``limit + 1``), and the ``next`` cursor: the
    last row's ``cursor``, or ``None`` when this is the last page."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, cursor(page[-1])


def _session_key(row: SessionRow, order: SessionOrder) -> tuple[int, str, str]:
    """Where a sessions page in this order ends (a session listed by its wait has one)."""
    ns = row.last_ns if order == "recent" else row.wait_worst_ns
    assert ns is not None
    return ns, *row.key


def _trace_key(row: TraceRow) -> tuple[int, str]:
    """Where a traces page (by start, either direction) ends."""
    return row.start_ns, row.trace_id


def _choices(session_id: str, named: list[SessionRow]) -> JSONResponse:
    """300 Multiple Choices: the id names a session in each of several workflows."""
    message = (
        f"session {session_id!r} is in {len(named)} workflows:"
        " name one with ?workflow= (empty for a session without one)"
    )
    sessions = [session_json(row) for row in named]
    return JSONResponse({"error": message, "sessions": sessions}, 300)


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code)
