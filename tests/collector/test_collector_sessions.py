"""Spans land in the right session whichever SDK convention carried the session id."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode
from starlette.testclient import TestClient

from tests.collector import otlp_data as otlp
from tests.collector.live import LiveCollector

PROTOBUF = {"Content-Type": "application/x-protobuf"}
Provider = Callable[..., TracerProvider]


def run_turns(provider: TracerProvider, key: str, session: str, turns: int = 3) -> None:
    """A chat-like run: each turn a root trace with the session key, and a child LLM call."""
    tracer = provider.get_tracer("test")
    for turn in range(turns):
        with (
            tracer.start_as_current_span(f"turn_{turn}", attributes={key: session}),
            tracer.start_as_current_span("llm.chat"),
        ):
            pass


def traces_of(collector: LiveCollector, session: str) -> list[str]:
    response = collector.get(f"/api/sessions/{session}")
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()["traces"]]


def test_plain_sdk_spans_with_only_neatlogs_session_id_are_grouped(
    collector: LiveCollector, sdk_provider: Provider
) -> None:
    provider = sdk_provider()

    run_turns(provider, "neatlogs.session.id", "conv-a")
    run_turns(provider, "neatlogs.session.id", "conv-b", turns=2)

    sessions = {s["session_id"]: s for s in collector.get("/api/sessions").json()["sessions"]}
    assert set(sessions) == {"conv-a", "conv-b"}
    assert (sessions["conv-a"]["trace_count"], sessions["conv-a"]["span_count"]) == (3, 6)
    assert (sessions["conv-b"]["trace_count"], sessions["conv-b"]["span_count"]) == (2, 4)
    assert traces_of(collector, "conv-a") == ["turn_0", "turn_1", "turn_2"]


def test_semantic_convention_session_id_groups(
    collector: LiveCollector, sdk_provider: Provider
) -> None:
    run_turns(sdk_provider(), "session.id", "otel-session")

    assert traces_of(collector, "otel-session") == ["turn_0", "turn_1", "turn_2"]


def test_langfuse_session_id_groups(collector: LiveCollector, sdk_provider: Provider) -> None:
    run_turns(sdk_provider(), "langfuse.session.id", "lf-session", turns=2)

    assert traces_of(collector, "lf-session") == ["turn_0", "turn_1"]


def test_session_id_wins_over_the_other_keys(
    collector: LiveCollector, sdk_provider: Provider
) -> None:
    tracer = sdk_provider().get_tracer("test")
    with tracer.start_as_current_span(
        "turn",
        attributes={
            "langfuse.session.id": "third",
            "neatlogs.session.id": "second",
            "session.id": "first",
        },
    ):
        pass

    assert [s["session_id"] for s in collector.get("/api/sessions").json()["sessions"]] == ["first"]


def test_a_session_id_on_the_resource_groups_spans_without_one(
    collector: LiveCollector, sdk_provider: Provider
) -> None:
    run_turns(sdk_provider(**{"session.id": "from-resource"}), "unrelated", "x", turns=2)

    assert traces_of(collector, "from-resource") == ["turn_0", "turn_1"]


def test_traces_without_a_session_are_listed_on_their_own(
    collector: LiveCollector, sdk_provider: Provider
) -> None:
    provider = sdk_provider()
    run_turns(provider, "session.id", "with-session", turns=1)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("cron job"):
        pass

    sessions = collector.get("/api/sessions").json()["sessions"]
    orphans = collector.get("/api/traces", session="none").json()["traces"]
    assert [s["session_id"] for s in sessions] == ["with-session"]
    assert [t["name"] for t in orphans] == ["cron job"]
    assert orphans[0]["session_id"] is None
    everything = collector.get("/api/traces").json()["traces"]
    assert [t["name"] for t in everything] == ["cron job", "turn_0"]


def test_errors_and_tokens_are_summed_per_trace_and_session(
    collector: LiveCollector, sdk_provider: Provider
) -> None:
    tracer = sdk_provider().get_tracer("test")
    with (
        tracer.start_as_current_span("turn_0", attributes={"session.id": "usage"}),
        tracer.start_as_current_span(
            "openai.chat",
            attributes={"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20},
        ),
    ):
        pass
    with (
        tracer.start_as_current_span("turn_1", attributes={"session.id": "usage"}),
        tracer.start_as_current_span(
            "ChatOpenAI",
            attributes={"llm.token_count.prompt": 7, "llm.token_count.completion": 3},
        ) as span,
    ):
        span.set_status(Status(StatusCode.ERROR, "rate limited"))

    session = collector.get("/api/sessions/usage").json()
    assert session["tokens"] == {"input": 107, "output": 23, "total": 130}
    assert session["error_count"] == 1
    assert [t["status"] for t in session["traces"]] == ["UNSET", "ERROR"]
    assert session["traces"][1]["tokens"] == {"input": 7, "output": 3, "total": 10}


def test_neatlogs_completion_markers_are_stored_but_not_counted(client: TestClient) -> None:
    trace_id, root_id = otlp.new_trace_id(), otlp.new_span_id()
    root = otlp.span("turn", trace_id=trace_id, span_id=root_id, attributes={"session.id": "m"})
    marker = otlp.span(
        "neatlogs.trace.complete",
        trace_id=trace_id,
        parent=root_id,
        start_ms=500,
        attributes={"neatlogs.trace.complete": True, "neatlogs.internal": True},
    )
    client.post("/v1/traces", content=otlp.protobuf(root), headers=PROTOBUF)
    client.post("/v1/traces", content=otlp.protobuf(marker), headers=PROTOBUF)

    session = client.get("/api/sessions/m").json()
    trace = client.get(f"/api/traces/{trace_id.hex()}").json()
    assert (session["trace_count"], session["span_count"]) == (1, 1)
    assert session["duration_ms"] == 10
    # The marker says the export finished, not that the person got the whole answer.
    assert trace["neatlogs_trace_complete"] is True
    assert trace["complete"] is None
    assert [s["name"] for s in trace["spans"]] == ["turn"]
    assert client.get("/api/sessions", params={"q": "neatlogs.trace"}).json()["sessions"] == []


def test_a_marker_alone_makes_no_trace(client: TestClient) -> None:
    marker = otlp.span(
        "neatlogs.trace.complete",
        parent=otlp.new_span_id(),
        attributes={"neatlogs.internal": True, "session.id": "only-marker"},
    )

    client.post("/v1/traces", content=otlp.protobuf(marker), headers=PROTOBUF)

    assert client.get("/api/sessions").json()["sessions"] == []
    assert client.get("/api/traces").json()["traces"] == []
    assert client.get("/api/sessions/only-marker").status_code == 404


def test_children_exported_before_their_root_join_its_session_and_name(
    client: TestClient,
) -> None:
    trace_id, root_id = otlp.new_trace_id(), otlp.new_span_id()
    child = otlp.span("tool call", trace_id=trace_id, parent=root_id, start_ms=5)
    root = otlp.span(
        "turn", trace_id=trace_id, span_id=root_id, duration_ms=50, attributes={"session.id": "s"}
    )

    client.post("/v1/traces", content=otlp.protobuf(child), headers=PROTOBUF)
    assert client.get(f"/api/traces/{trace_id.hex()}").json()["name"] == "tool call"
    assert [t["name"] for t in client.get("/api/traces?session=none").json()["traces"]] == [
        "tool call"
    ]
    client.post("/v1/traces", content=otlp.protobuf(root), headers=PROTOBUF)

    session = client.get("/api/sessions/s").json()
    assert [(t["name"], t["span_count"]) for t in session["traces"]] == [("turn", 2)]
    assert client.get("/api/traces?session=none").json()["traces"] == []


def test_a_root_with_another_session_moves_the_trace_and_fixes_both_sessions(
    client: TestClient,
) -> None:
    trace_id, root_id = otlp.new_trace_id(), otlp.new_span_id()
    child = otlp.span(
        "child", trace_id=trace_id, parent=root_id, attributes={"session.id": "stale"}
    )
    other = otlp.span("other", attributes={"session.id": "stale"})
    root = otlp.span("root", trace_id=trace_id, span_id=root_id, attributes={"session.id": "real"})

    client.post("/v1/traces", content=otlp.protobuf(child, other), headers=PROTOBUF)
    client.post("/v1/traces", content=otlp.protobuf(root), headers=PROTOBUF)

    assert client.get("/api/sessions/real").json()["span_count"] == 2
    assert client.get("/api/sessions/stale").json()["trace_count"] == 1


def test_workflow_comes_from_neatlogs_workflow_name_else_service_name(
    collector: LiveCollector, sdk_provider: Provider
) -> None:
    run_turns(sdk_provider("svc", **{"neatlogs.workflow_name": "support-bot"}), "session.id", "w1")
    run_turns(sdk_provider("plain-service"), "session.id", "w2")

    workflows = {
        s["session_id"]: s["workflow"] for s in collector.get("/api/sessions").json()["sessions"]
    }
    assert workflows == {"w1": "support-bot", "w2": "plain-service"}
    filtered = collector.get("/api/sessions", workflow="support-bot").json()["sessions"]
    assert [s["session_id"] for s in filtered] == ["w1"]


def test_json_export_from_another_sdk_groups_the_same(collector: LiveCollector) -> None:
    spans = [
        otlp.json_span("turn", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", session="j")
    ]

    response = httpx.post(
        collector.url + "/v1/traces",
        content=otlp.otlp_json(spans),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 200
    assert traces_of(collector, "j") == ["turn"]
