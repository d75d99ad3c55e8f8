"""Sessions read as conversations: user turns, their input and output, who, and filters.

Spans are exported the way a FastAPI app with its own telemetry and the SDK send them
(see `conversations.py`); every fact is read back through the JSON API.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.collector import conversations
from tests.collector import otlp_data as otlp
from tests.collector.conversations import Turn

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def sender(client: TestClient) -> conversations.Send:
    def send(body: bytes) -> None:
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200

    return send


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    conversations.seed(sender(client))
    return client


def sessions(client: TestClient, **params: str) -> list[dict[str, Any]]:
    answer = client.get("/api/sessions", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["sessions"])


def ids(client: TestClient, **params: str) -> list[str]:
    return [s["session_id"] for s in sessions(client, **params)]


def test_each_turn_has_its_input_and_output_whatever_convention_carried_them(
    seeded: TestClient,
) -> None:
    session = seeded.get("/api/sessions/conv-7f3a").json()

    entries = session["traces"]
    # OpenInference on the root, GenAI messages on the LLM call, the neatlogs SDK's keys.
    assert [(e["input"], e["output"]) for e in entries] == [
        (turn.input, turn.output) for turn in conversations.ALICE_TURNS
    ]
    assert session["first_input"] == "How do I reset my password?"
    assert session["last_output"] == conversations.ALICE_TURNS[-1].output
    assert session["end_user"] == "alice@example.com"
    assert [e["end_user"] for e in entries] == ["alice@example.com"] * 3


def test_request_traces_fold_into_the_turn_that_links_to_them(seeded: TestClient) -> None:
    session = seeded.get("/api/sessions/conv-7f3a").json()

    # 3 turns, each with FastAPI's request trace, and one background summary: 7 traces.
    assert (session["turn_count"], session["trace_count"]) == (3, 7)
    entries = session["traces"]
    assert [e["name"] for e in entries] == ["turn", "turn", "turn"]
    assert all(e["turn"] for e in entries)
    requests = [e["request"] for e in entries]
    assert [(r["name"], r["http_status"], r["turn"]) for r in requests] == [
        ("POST /chat/{conversation_id}", 200, False)
    ] * 3
    assert [[p["name"] for p in e["parts"]] for e in entries] == [["summarise"], [], []]
    assert [e["status"] for e in entries] == ["UNSET", "UNSET", "ERROR"]
    assert [e["tokens"]["total"] for e in entries] == [976, 736, 600]


def test_a_turn_exported_before_its_request_still_folds_it(client: TestClient) -> None:
    sent: list[bytes] = []
    conversations.send_turn(sent.append, "late", None, Turn(0, "hi", "hello"), otlp.BASE_NS)
    for body in reversed(sent):  # the turn's trace first, the request's after
        sender(client)(body)

    session = client.get("/api/sessions/late").json()

    assert session["turn_count"] == 1
    assert [(e["name"], e["request"]["name"]) for e in session["traces"]] == [
        ("turn", "POST /chat/{conversation_id}")
    ]


def test_turns_with_their_own_input_on_one_request_are_each_a_turn(client: TestClient) -> None:
    # A WebSocket: every message is a turn, all linked to the one handshake request.
    request_trace, request_span = otlp.new_trace_id(), otlp.new_span_id()
    handshake = otlp.span(
        "WEBSOCKET /ws",
        trace_id=request_trace,
        span_id=request_span,
        duration_ms=9000,
        attributes={"session.id": "ws", "http.route": "/ws"},
        kind=otlp.Span.SPAN_KIND_SERVER,
    )
    turns = []
    for index, text in enumerate(["first", "second"]):
        turn = otlp.span(
            "turn",
            start_ms=1000 + index * 2000,
            attributes={"session.id": "ws", "input.value": text},
        )
        turn.links.add(trace_id=request_trace, span_id=request_span)
        turns.append(turn)
    sender(client)(otlp.protobuf(handshake, scope="opentelemetry.instrumentation.asgi"))
    sender(client)(otlp.protobuf(*turns))

    session = client.get("/api/sessions/ws").json()

    assert session["turn_count"] == 2
    assert [e["input"] for e in session["traces"]] == ["first", "second"]
    assert session["traces"][0]["request"]["name"] == "WEBSOCKET /ws"


def test_unknown_input_and_output_are_null(client: TestClient) -> None:
    sender(client)(otlp.protobuf(otlp.span("cron", attributes={"session.id": "plain"})))

    session = client.get("/api/sessions/plain").json()

    assert (session["first_input"], session["last_output"]) == (None, None)
    assert [(e["input"], e["output"]) for e in session["traces"]] == [(None, None)]


def test_a_request_no_turn_claims_is_listed_but_not_a_turn(seeded: TestClient) -> None:
    session = seeded.get("/api/sessions/sess-whoami").json()

    assert (session["turn_count"], session["trace_count"]) == (0, 1)
    assert [(e["name"], e["turn"]) for e in session["traces"]] == [("GET /whoami", False)]


def test_the_list_has_end_user_first_input_and_turns(seeded: TestClient) -> None:
    listed = {s["session_id"]: s for s in sessions(seeded)}

    alice = listed["conv-7f3a"]
    assert (alice["end_user"], alice["first_input"], alice["turn_count"]) == (
        "alice@example.com",
        "How do I reset my password?",
        3,
    )
    assert alice["tokens"]["total"] == 976 + 736 + 600
    assert alice["error_count"] == 2
    assert listed["sess-health"]["turn_count"] == 0


def test_sessions_without_turns_are_left_out_on_request_and_counted(seeded: TestClient) -> None:
    answer = seeded.get("/api/sessions", params={"turns": "1"}).json()

    assert [s["session_id"] for s in answer["sessions"]] == ["conv-7f3a", "conv-91bc", "conv-old"]
    assert answer["without_turns"] == 2
    assert "without_turns" not in seeded.get("/api/sessions").json()
    assert set(ids(seeded)) == {"conv-7f3a", "conv-91bc", "conv-old", "sess-whoami", "sess-health"}


def test_filters_by_user_workflow_errors_and_time(seeded: TestClient) -> None:
    assert ids(seeded, user="bob@example.com") == ["conv-91bc"]
    assert ids(seeded, errors="1") == ["conv-7f3a"]
    assert ids(seeded, workflow="nope") == []
    assert len(ids(seeded, workflow="support-bot")) == 5
    old = seeded.get("/api/sessions/conv-old").json()["last_seen"]
    recent = seeded.get("/api/sessions/conv-91bc").json()["first_seen"]
    assert ids(seeded, since=recent) == ["conv-7f3a", "sess-health", "sess-whoami", "conv-91bc"]
    assert ids(seeded, until=old.replace("Z", "+00:00")) == ["conv-old"]
    assert ids(seeded, user="bob@example.com", errors="1") == []
    facets = seeded.get("/api/facets").json()
    assert facets == {
        "users": ["alice@example.com", "bob@example.com", "carol@example.com"],
        "workflows": ["support-bot"],
    }


def test_search_finds_ids_users_span_names_and_attribute_values(seeded: TestClient) -> None:
    assert ids(seeded, q="7F3A") == ["conv-7f3a"]  # an id, any case
    assert ids(seeded, q="bob@") == ["conv-91bc"]  # an end user
    assert ids(seeded, q="whoami") == ["sess-whoami"]  # a span name
    assert ids(seeded, q="opening hours") == ["conv-91bc"]  # an attribute value
    assert ids(seeded, q="ticket #4812") == ["conv-7f3a"]  # a turn's output
    assert ids(seeded, q="100%_\\") == []  # LIKE wildcards are literal


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "yesterday"),
        ("since", "2025-01-01T00:00:00"),  # no time zone
        ("errors", "maybe"),
        ("turns", "2"),
    ],
)
def test_bad_filters_are_400(client: TestClient, name: str, value: str) -> None:
    answer = client.get("/api/sessions", params={name: value})

    assert answer.status_code == 400
    assert name in answer.json()["error"]


def test_an_llm_span_carries_its_kind_and_messages(seeded: TestClient) -> None:
    turn = seeded.get("/api/sessions/conv-7f3a").json()["traces"][1]  # GenAI messages
    spans = {s["name"]: s for s in seeded.get(f"/api/traces/{turn['trace_id']}").json()["spans"]}

    assert {name: s["ai_kind"] for name, s in spans.items()} == {
        "turn": None,
        "retrieve documents": "RETRIEVER",
        "llm.chat": "LLM",
        "tool: search_kb": "TOOL",
    }
    assert spans["llm.chat"]["messages"] == {
        "input": [
            {"role": "system", "content": "You are a helpful support assistant."},
            {"role": "user", "content": "The email never arrived."},
        ],
        "output": [{"role": "assistant", "content": conversations.ALICE_TURNS[1].output}],
    }
    assert spans["retrieve documents"]["messages"] is None
    assert spans["retrieve documents"]["input"] == "The email never arrived."
