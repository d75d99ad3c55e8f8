"""The JSON API's shapes, ordering, paging, search and errors."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.testclient import TestClient

from neatlogs_web.collector.app import STATIC_DIR
from tests.collector import otlp_data as otlp

PROTOBUF = {"Content-Type": "application/x-protobuf"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def send(client: TestClient, *spans: Span, **resource: str) -> None:
    body = otlp.protobuf(*spans, resource=resource or None)
    assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200


def seed_sessions(client: TestClient, count: int) -> list[str]:
    """`count` sessions, session-0 oldest; returns ids newest activity first."""
    for index in range(count):
        send(
            client,
            otlp.span("turn", start_ms=index * 1000, attributes={"session.id": f"session-{index}"}),
        )
    return [f"session-{index}" for index in reversed(range(count))]


def test_session_list_shape(client: TestClient) -> None:
    trace_id, root_id = otlp.new_trace_id(), otlp.new_span_id()
    send(
        client,
        otlp.span(
            "turn",
            trace_id=trace_id,
            span_id=root_id,
            duration_ms=100,
            attributes={"session.id": "shape"},
        ),
        otlp.span(
            "llm",
            trace_id=trace_id,
            parent=root_id,
            start_ms=10,
            error="boom",
            attributes={"gen_ai.usage.input_tokens": 5},
        ),
        **{"service.name": "shop"},
    )

    body = client.get("/api/sessions").json()

    assert body == {
        "sessions": [
            {
                "session_id": "shape",
                "workflow": "shop",
                "trace_count": 1,
                "span_count": 2,
                "error_count": 1,
                "first_seen": "2023-11-14T22:13:20.000000Z",
                "last_seen": "2023-11-14T22:13:20.100000Z",
                "duration_ms": 100.0,
                "tokens": {"input": 5, "output": None, "total": 5},
                "turn_count": 1,
                "end_user": None,
                "first_input": None,
                "last_output": None,
                "time_to_first_chunk_ms": None,
                "feedback": {"up": 0, "down": 0, "count": 0},
            }
        ],
        "next": None,
    }


def test_session_detail_lists_traces_in_time_order(client: TestClient) -> None:
    # Sent out of order: the API orders by start time.
    send(client, otlp.span("third", start_ms=9000, attributes={"session.id": "s"}))
    send(client, otlp.span("first", start_ms=0, duration_ms=1500, attributes={"session.id": "s"}))
    send(client, otlp.span("second", start_ms=4000, error="failed", attributes={"session.id": "s"}))

    body = client.get("/api/sessions/s").json()

    assert [t["name"] for t in body["traces"]] == ["first", "second", "third"]
    assert body["trace_count"] == 3
    assert body["duration_ms"] == 9010.0
    first = body["traces"][0]
    assert set(first) == {
        "trace_id",
        "session_id",
        "workflow",
        "name",
        "start",
        "end",
        "duration_ms",
        "status",
        "span_count",
        "error_count",
        "tokens",
        "complete",
        "response",
        "feedback",
        "judgments",
        "turn",
        "input",
        "output",
        "end_user",
        "http_status",
        "request",
        "parts",
        "parts_omitted",
    }
    assert (first["duration_ms"], first["span_count"], first["status"]) == (1500.0, 1, "UNSET")
    assert body["traces"][1]["status"] == "ERROR"
    assert all(RFC3339.match(t["start"]) and RFC3339.match(t["end"]) for t in body["traces"])


def test_trace_detail_has_every_span_with_its_fields(client: TestClient) -> None:
    trace_id, root_id = otlp.new_trace_id(), otlp.new_span_id()
    linked_trace, linked_span = otlp.new_trace_id(), otlp.new_span_id()
    root = otlp.span(
        "GET /chat",
        trace_id=trace_id,
        span_id=root_id,
        duration_ms=80,
        kind=Span.SPAN_KIND_SERVER,
        attributes={
            "session.id": "t",
            "http.status_code": 200,
            "ok": True,
            "ratio": 0.5,
            "tags": ["a", "b"],
            "raw": b"\x00\x01",
        },
    )
    root.events.add(
        time_unix_nano=root.start_time_unix_nano + 1000, name="retry"
    ).attributes.extend(otlp.kvs({"attempt": 2}))
    root.links.add(trace_id=linked_trace, span_id=linked_span)
    child = otlp.span(
        "db.query",
        trace_id=trace_id,
        parent=root_id,
        start_ms=0.25,
        duration_ms=0.5,
        kind=Span.SPAN_KIND_CLIENT,
        error="timeout",
    )
    send(client, root, child)

    body = client.get(f"/api/traces/{trace_id.hex()}").json()

    assert body["trace_id"] == trace_id.hex()
    assert (body["name"], body["span_count"], body["error_count"], body["status"]) == (
        "GET /chat",
        2,
        1,
        "ERROR",
    )
    by_name = {s["name"]: s for s in body["spans"]}
    server = by_name["GET /chat"]
    assert set(server) == {
        "span_id",
        "parent_span_id",
        "name",
        "kind",
        "start",
        "end",
        "duration_ms",
        "status",
        "attributes",
        "events",
        "links",
        "resource",
        "scope",
        "ai_kind",
        "input",
        "output",
        "messages",
    }
    assert server["parent_span_id"] is None
    assert server["kind"] == "SERVER"
    assert server["attributes"] == {
        "session.id": "t",
        "http.status_code": 200,
        "ok": True,
        "ratio": 0.5,
        "tags": ["a", "b"],
        "raw": "AAE=",
    }
    assert server["events"] == [
        {"name": "retry", "time": "2023-11-14T22:13:20.000001Z", "attributes": {"attempt": 2}}
    ]
    assert server["links"] == [
        {"trace_id": linked_trace.hex(), "span_id": linked_span.hex(), "attributes": {}}
    ]
    assert server["resource"] == {"service.name": "tests"}
    assert server["scope"] == {"name": "tests", "version": "", "attributes": {}}
    db = by_name["db.query"]
    assert db["parent_span_id"] == root_id.hex()
    assert (db["kind"], db["duration_ms"]) == ("CLIENT", 0.5)
    assert db["status"] == {"code": "ERROR", "message": "timeout"}
    assert db["start"] == "2023-11-14T22:13:20.000250Z"


def test_sessions_are_newest_activity_first_and_page_with_next(client: TestClient) -> None:
    expected = seed_sessions(client, 7)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3", **({"before": cursor} if cursor else {})}
        body = client.get("/api/sessions", params=params).json()
        seen += [s["session_id"] for s in body["sessions"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break

    assert seen == expected
    assert pages == 3


def test_a_sessions_traces_page_in_time_order_with_after(client: TestClient) -> None:
    # Two traces share a start time: the trace id orders them, so no page repeats or skips one.
    for index, start_ms in enumerate([0, 1000, 1000, 2000, 3000, 4000, 5000]):
        send(client, otlp.span(f"turn-{index}", start_ms=start_ms, attributes={"session.id": "p"}))

    whole = client.get("/api/sessions/p").json()
    pages: list[list[str]] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"after": cursor} if cursor else {})}
        body = client.get("/api/sessions/p", params=params).json()
        pages.append([t["trace_id"] for t in body["traces"]])
        assert body["trace_count"] == 7  # the summary is the whole session's on every page
        cursor = body["next"]
        if cursor is None:
            break

    assert whole["next"] is None
    assert [len(page) for page in pages] == [3, 3, 1]
    paged = [trace_id for page in pages for trace_id in page]
    assert paged == [t["trace_id"] for t in whole["traces"]]
    assert len(set(paged)) == 7


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=" + "9" * 5000,  # more digits than int() reads
        "limit=%C2%B2",  # "²" is a digit to str.isdigit(), not to int()
        "limit=%D9%A3",  # an Arabic-Indic 3
        "after=%%%",
        "after=bm90LWEtY3Vyc29y",
        "after=" + base64.urlsafe_b64encode(b"99999999999999999999:x").decode(),
        "after=" + base64.urlsafe_b64encode(b"-1:x").decode(),
    ],
)
def test_bad_session_page_parameters_are_400(client: TestClient, query: str) -> None:
    send(client, otlp.span("turn", attributes={"session.id": "q"}))

    response = client.get(f"/api/sessions/q?{query}")

    assert response.status_code == 400
    assert response.json()["error"]


def test_activity_in_an_old_session_moves_it_to_the_top(client: TestClient) -> None:
    seed_sessions(client, 3)
    send(client, otlp.span("later", start_ms=60_000, attributes={"session.id": "session-0"}))

    ids = [s["session_id"] for s in client.get("/api/sessions").json()["sessions"]]

    assert ids == ["session-0", "session-2", "session-1"]


def test_traces_without_a_session_page_too(client: TestClient) -> None:
    for index in range(5):
        send(client, otlp.span(f"job-{index}", start_ms=index))

    first = client.get("/api/traces", params={"session": "none", "limit": "2"}).json()
    second = client.get(
        "/api/traces", params={"session": "none", "limit": "4", "before": first["next"]}
    ).json()

    assert [t["name"] for t in first["traces"]] == ["job-4", "job-3"]
    assert [t["name"] for t in second["traces"]] == ["job-2", "job-1", "job-0"]
    assert second["next"] is None


def test_q_searches_session_ids_and_span_names(client: TestClient) -> None:
    trace_id, root_id = otlp.new_trace_id(), otlp.new_span_id()
    send(
        client,
        otlp.span("turn", trace_id=trace_id, span_id=root_id, attributes={"session.id": "alice-1"}),
        otlp.span("search_flights", trace_id=trace_id, parent=root_id),
    )
    send(client, otlp.span("turn", attributes={"session.id": "bob-2"}))
    send(client, otlp.span("100%_done", attributes={"session.id": "carol-3"}))

    def search(q: str) -> list[str]:
        return [
            s["session_id"] for s in client.get("/api/sessions", params={"q": q}).json()["sessions"]
        ]

    assert search("ALICE") == ["alice-1"]
    assert search("flights") == ["alice-1"]
    assert sorted(search("turn")) == ["alice-1", "bob-2"]
    assert search("%_") == ["carol-3"]  # LIKE wildcards are matched literally
    assert search("nothing-like-this") == []


@pytest.mark.parametrize("session_id", ["a/b", "user@example.com:chat+1=x.y", "with space", "ü-ñ"])
def test_session_ids_with_reserved_characters_route(client: TestClient, session_id: str) -> None:
    send(client, otlp.span("turn", attributes={"session.id": session_id}))

    response = client.get("/api/sessions/" + quote(session_id, safe=""))

    assert response.status_code == 200
    assert response.json()["session_id"] == session_id


def test_unknown_ids_are_404_json(client: TestClient) -> None:
    for path in (
        "/api/sessions/nope",
        "/api/traces/" + "ab" * 16,
        "/api/traces/not-an-id",
        "/api/nothing-here",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]


@pytest.mark.parametrize(
    ("path", "name"), [("/api/sessions/", "session id"), ("/api/traces/", "trace id")]
)
def test_an_id_longer_than_any_stored_is_400_naming_its_limit(
    client: TestClient, path: str, name: str
) -> None:
    response = client.get(path + "a" * 1_001)

    assert response.status_code == 400
    assert response.json() == {"error": f"{name} must be at most 1000 characters, not 1001"}
    assert client.get(path + "a" * 1_000).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=ten",
        "limit=" + "9" * 5000,  # more digits than int() reads
        "before=%%%",
        "before=bm90LWEtY3Vyc29y",
        "before=" + base64.urlsafe_b64encode(b"99999999999999999999:x").decode(),
    ],
)
def test_bad_list_parameters_are_400(client: TestClient, query: str) -> None:
    response = client.get(f"/api/sessions?{query}")

    assert response.status_code == 400
    assert response.json()["error"]


def test_traces_session_filter_only_takes_none(client: TestClient) -> None:
    response = client.get("/api/traces", params={"session": "abc"})

    assert response.status_code == 400
    assert "/api/sessions/" in response.json()["error"]


def test_the_page_and_its_files_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    # app.js and the modules it imports.
    scripts = [client.get(f"/static/{path.name}") for path in STATIC_DIR.glob("*.js")]
    style = client.get("/static/app.css")

    assert page.status_code == style.status_code == 200
    assert [script.status_code for script in scripts] == [200] * len(scripts)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="static/app.js"' in page.text
    code = "".join(script.text for script in scripts)
    assert "innerHTML" not in code
    assert "static/app.js" in [script.url.path.lstrip("/") for script in scripts]
    # Nothing is loaded from elsewhere, so the page works offline.
    assert not re.search(r"https?://", page.text + code + style.text)
