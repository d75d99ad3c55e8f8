"""A small typed client for a Phoenix server's own API: what its UI shows.

Projects and spans come from the REST API (``/v1/projects``,
``/v1/projects/{name}/spans``); sessions from GraphQL (``/graphql``), the
only place Phoenix 20 serves a session's first input, last output, end user
and token usage, which its Sessions page shows. What Phoenix computes, and
from which attributes (read from its source, phoenix 20.26):

- project: the ``openinference.project.name`` *resource* attribute of the
  export (an ``x-project-name`` header wins); else "default". A trace stays
  in the project of the first span of it that arrives.
- session: ``session.id`` on any span of a trace; the first span of the
  trace that arrives carrying one attaches the whole trace, later values are
  ignored. A session id belongs to the project it first appeared in.
- first input / last output: ``input.value`` / ``output.value`` of the root
  span (no parent) of the session's first / last trace by start time; if
  that root has none, the session shows none (an earlier trace without one
  hides a later trace's input).
- user: the first non-null ``user.id`` attribute on any span of the session,
  by span start time.
- tokens: summed over spans whose ``openinference.span.kind`` is ``LLM``:
  ``llm.token_count.prompt`` and ``llm.token_count.completion``; the total
  is their sum (``llm.token_count.total`` is not read for it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

T = TypeVar("T")


@dataclass(frozen=True)
class Project:
    id: str
    name: str


@dataclass(frozen=True)
class TokenCounts:
    prompt: int
    completion: int
    total: int


@dataclass(frozen=True)
class Trace:
    """One trace of a session, as the session's timeline shows it."""

    trace_id: str
    start_time: str
    root_span_name: str | None
    root_span_kind: str | None
    input: str | None
    output: str | None
    num_spans: int


@dataclass(frozen=True)
class Session:
    id: str
    session_id: str
    num_traces: int
    first_input: str | None
    last_output: str | None
    user_id: str | None
    tokens: TokenCounts
    traces: tuple[Trace, ...]

    @property
    def root_span_names(self) -> list[str | None]:
        return [trace.root_span_name for trace in self.traces]

    @property
    def inputs(self) -> list[str | None]:
        return [trace.input for trace in self.traces]

    @property
    def outputs(self) -> list[str | None]:
        return [trace.output for trace in self.traces]


@dataclass(frozen=True)
class Span:
    span_id: str
    trace_id: str
    parent_id: str | None
    name: str
    span_kind: str
    attributes: dict[str, Any]

    def attribute(self, key: str) -> Any:
        """A dotted attribute key, whether Phoenix returned it flat or nested."""
        if key in self.attributes:
            return self.attributes[key]
        value: Any = self.attributes
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value


class PhoenixAPIError(RuntimeError):
    pass


_SESSION_FIELDS = """
    id
    sessionId
    numTraces
    firstInput { value }
    lastOutput { value }
    userId
    tokenUsage { prompt completion total }
    traces(first: $tracesPerSession) {
      edges {
        node {
          traceId
          startTime
          numSpans
          rootSpan { name spanKind input { value } output { value } }
        }
      }
    }
"""

_SESSIONS_QUERY = (
    """
query ProjectSessions($name: String!, $first: Int!, $after: String, $tracesPerSession: Int!) {
  getProjectByName(name: $name) {
    sessions(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { """
    + _SESSION_FIELDS
    + """ } }
    }
  }
}
"""
)


class PhoenixClient:
    """Reads what a Phoenix server stored; ``with PhoenixClient(url) as phoenix: ...``."""

    def __init__(self, base_url: str, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PhoenixClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # REST

    def _get(
        self, path: str, params: dict[str, Any] | None = None, missing_ok: bool = False
    ) -> Any:
        response = self._http.get(path, params=params)
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PhoenixAPIError(f"GET {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def projects(self) -> list[Project]:
        projects: list[Project] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            body = self._get("/v1/projects", params)
            projects.extend(Project(id=p["id"], name=p["name"]) for p in body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return projects

    def project(self, name: str) -> Project | None:
        return next((p for p in self.projects() if p.name == name), None)

    def project_names(self) -> list[str]:
        return [p.name for p in self.projects()]

    def spans(self, project: str) -> list[Span]:
        """Every span of a project, oldest first; [] if no such project (yet)."""
        spans: list[Span] = []
        cursor: str | None = None
        path = f"/v1/projects/{quote(project, safe='')}/spans"
        while True:
            params: dict[str, Any] = {"limit": 1000, "sort": "start_time", "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            body = self._get(path, params, missing_ok=True)
            if body is None:
                return []
            spans.extend(
                Span(
                    span_id=s["context"]["span_id"],
                    trace_id=s["context"]["trace_id"],
                    parent_id=s.get("parent_id"),
                    name=s["name"],
                    span_kind=s["span_kind"],
                    attributes=s.get("attributes") or {},
                )
                for s in body["data"]
            )
            cursor = body.get("next_cursor")
            if not cursor:
                return spans

    def span_annotations(self, project: str, span_ids: list[str]) -> list[dict[str, Any]]:
        """The annotations of ``span_ids`` in a project (its REST API's records:
        ``span_id``, ``name``, ``annotator_kind``, ``result``, ``identifier``, ...)."""
        path = f"/v1/projects/{quote(project, safe='')}/span_annotations"
        body = self._get(path, {"span_ids": span_ids, "limit": 1000}, missing_ok=True)
        return [] if body is None else list(body["data"])

    def all_spans(self) -> list[Span]:
        """Every span of every project."""
        return [span for name in self.project_names() for span in self.spans(name)]

    # GraphQL

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post("/graphql", json={"query": query, "variables": variables})
        if response.status_code != 200:
            raise PhoenixAPIError(f"POST /graphql: {response.status_code} {response.text[:500]}")
        body = response.json()
        if body.get("errors"):
            raise PhoenixAPIError(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def sessions(self, project: str, traces_per_session: int = 100) -> list[Session]:
        """A project's sessions with their traces in time order; [] if no such project."""
        sessions: list[Session] = []
        after: str | None = None
        while True:
            data = self.graphql(
                _SESSIONS_QUERY,
                {
                    "name": project,
                    "first": 100,
                    "after": after,
                    "tracesPerSession": traces_per_session,
                },
            )
            found = data["getProjectByName"]
            if found is None:
                return []
            connection = found["sessions"]
            sessions.extend(_session(edge["node"]) for edge in connection["edges"])
            if not connection["pageInfo"]["hasNextPage"]:
                return sorted(sessions, key=lambda s: s.traces[0].start_time if s.traces else "")
            after = connection["pageInfo"]["endCursor"]

    def session(self, project: str, session_id: str) -> Session | None:
        return next((s for s in self.sessions(project) if s.session_id == session_id), None)


def _value(io: dict[str, Any] | None) -> str | None:
    return None if io is None else io.get("value")


def _session(node: dict[str, Any]) -> Session:
    traces = tuple(
        sorted(
            (_trace(edge["node"]) for edge in node["traces"]["edges"]),
            key=lambda t: t.start_time,
        )
    )
    usage = node["tokenUsage"]
    return Session(
        id=node["id"],
        session_id=node["sessionId"],
        num_traces=node["numTraces"],
        first_input=_value(node["firstInput"]),
        last_output=_value(node["lastOutput"]),
        user_id=node["userId"],
        tokens=TokenCounts(
            prompt=int(usage["prompt"]),
            completion=int(usage["completion"]),
            total=int(usage["total"]),
        ),
        traces=traces,
    )


def _trace(node: dict[str, Any]) -> Trace:
    root = node["rootSpan"]
    return Trace(
        trace_id=node["traceId"],
        start_time=node["startTime"],
        root_span_name=None if root is None else root["name"],
        root_span_kind=None if root is None else root["spanKind"],
        input=None if root is None else _value(root["input"]),
        output=None if root is None else _value(root["output"]),
        num_spans=node["numSpans"],
    )


def wait_for(
    read: Callable[[], T],
    ready: Callable[[T], bool],
    timeout_s: float = 30.0,
    interval_s: float = 0.25,
) -> T:
    """Poll ``read()`` until ``ready(value)``; Phoenix ingests in the background.

    Returns the last value either way, so a test's assertions show what
    Phoenix had when time ran out rather than a bare timeout.
    """
    deadline = time.monotonic() + timeout_s
    value = read()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = read()
    return value


def settled() -> Callable[[list[Any]], bool]:
    """For :func:`wait_for`: ready when the count read stopped growing over three
    reads (Phoenix inserts in the background, within ~0.1 s of receipt, after an
    exporter's flush returned)."""
    seen: list[int] = []

    def ready(values: list[Any]) -> bool:
        seen.append(len(values))
        return len(seen) >= 4 and seen[-1] > 0 and seen[-1] == seen[-2] == seen[-3]

    return ready
