"""What the collector keeps of one span, and what one API answer holds.

Past each bound the excess is left out or cut and counted on the span, never a failed
export: a sender's spans always land. Everything runs against a real collector on
loopback and is read back through the JSON API.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector import otlp_data as otlp
from tests.collector.live import LiveCollector

PROTOBUF = {"Content-Type": "application/x-protobuf"}
MARK = "neatlogs.collector.truncated"
MIB = 1024 * 1024


def send(collector: LiveCollector, *spans: Span, **options: Any) -> None:
    body = otlp.protobuf(*spans, **options)
    response = httpx.post(collector.url + "/v1/traces", content=body, headers=PROTOBUF, timeout=60)
    assert response.status_code == 200, response.content


def stored(collector: LiveCollector, span: Span) -> dict[str, Any]:
    """The span as the trace's answer shows it."""
    answer = collector.get("/api/traces/" + span.trace_id.hex())
    assert answer.status_code == 200, answer.text
    (found,) = [s for s in answer.json()["spans"] if s["span_id"] == span.span_id.hex()]
    return dict(found)


def test_a_span_keeps_1000_attributes_events_and_links_and_counts_the_rest(
    collector: LiveCollector,
) -> None:
    span = otlp.span("busy", attributes={f"a{index:04}": index for index in range(1_200)})
    span.events.extend(Span.Event(name=f"e{index}") for index in range(1_100))
    span.links.extend(
        Span.Link(trace_id=otlp.new_trace_id(), span_id=otlp.new_span_id()) for _ in range(1_050)
    )
    send(collector, span)

    found = stored(collector, span)

    assert found["attributes"].pop(MARK) == {"attributes": 200, "events": 100, "links": 50}
    assert found["attributes"] == {f"a{index:04}": index for index in range(1_000)}
    assert [event["name"] for event in found["events"]] == [f"e{i}" for i in range(1_000)]
    assert len(found["links"]) == 1_000


def test_an_array_or_key_value_list_keeps_10000_items_and_counts_the_rest(
    collector: LiveCollector,
) -> None:
    span = otlp.span(
        "wide",
        attributes={
            "vector": list(range(12_000)),
            "table": {f"k{index:05}": index for index in range(10_500)},
        },
    )
    send(collector, span)

    attributes = stored(collector, span)["attributes"]

    assert attributes["vector"] == list(range(10_000))
    assert attributes["table"] == {f"k{index:05}": index for index in range(10_000)}
    assert attributes[MARK] == {"items": 2_500}


def test_a_value_nested_past_8_levels_is_null_and_counted(collector: LiveCollector) -> None:
    sent: Any = ["leaf"]
    kept: Any = [None]  # the 9th level and all it holds
    for _ in range(9):
        sent = [sent]
    for _ in range(7):
        kept = [kept]
    span = otlp.span("deep", attributes={"deep": sent, "shallow": [[["leaf"]]]})
    send(collector, span)

    attributes = stored(collector, span)["attributes"]

    assert attributes["deep"] == kept
    assert attributes["shallow"] == [[["leaf"]]]
    assert attributes[MARK] == {"nested": 1}


def test_long_text_is_cut_with_an_ellipsis_and_counted(collector: LiveCollector) -> None:
    span = otlp.span(
        "n" * 5_000,
        attributes={"document": "d" * 1_000_100, "blob": b"\x01" * 1_000_010, "short": "ok"},
    )
    send(collector, span)

    found = stored(collector, span)

    assert found["name"] == "n" * 999 + "…"
    assert found["attributes"]["document"] == "d" * 999_999 + "…"
    assert base64.b64decode(found["attributes"]["blob"]) == b"\x01" * 1_000_000
    assert found["attributes"]["short"] == "ok"
    assert found["attributes"][MARK] == {"characters": 4_001 + 101 + 10}


def test_resource_and_scope_are_bounded_and_marked_too(collector: LiveCollector) -> None:
    resource = {"service.name": "svc", **{f"r{index:04}": "x" for index in range(1_100)}}
    span = otlp.span("in a big resource")
    send(collector, span, resource=resource, scope="s" * 2_000)

    found = stored(collector, span)

    assert len(found["resource"]) == 1_000 + 1
    assert found["resource"][MARK] == {"attributes": 101}
    assert found["scope"]["name"] == "s" * 999 + "…"
    assert found["scope"]["attributes"] == {MARK: {"characters": 1_001}}
    assert MARK not in found["attributes"]


def test_a_session_end_user_and_workflow_past_1000_characters_are_filed_cut(
    collector: LiveCollector,
) -> None:
    session, user, workflow = "s" * 3_000, "u" * 3_000, "w" * 3_000
    send(
        collector,
        otlp.span("turn", attributes={"session.id": session, "user.id": user}),
        resource={"service.name": workflow},
    )

    (listed,) = collector.get("/api/sessions").json()["sessions"]

    assert listed["session_id"] == session[:999] + "…"
    assert listed["end_user"] == user[:999] + "…"
    assert listed["workflow"] == workflow[:999] + "…"
    # Every stored key fits the API's 1,000-character parameters.
    page = collector.get("/api/sessions/" + listed["session_id"])
    assert page.status_code == 200
    filtered = collector.get("/api/sessions", workflow=listed["workflow"], user=listed["end_user"])
    assert [s["session_id"] for s in filtered.json()["sessions"]] == [listed["session_id"]]


def test_what_real_sdks_send_is_kept_whole(collector: LiveCollector) -> None:
    prompt = "Summarise the following ticket history.\n" + "é lorem ipsum " * 5_000  # 70 KiB
    attributes: dict[str, Any] = {f"app.attribute.{index}": index for index in range(120)}
    attributes.update(
        {
            "session.id": "sdk",
            "openinference.span.kind": "EMBEDDING",
            "input.value": prompt,
            "embedding.vector": [index / 3_072 for index in range(3_072)],
            "gen_ai.response.finish_reasons": ["stop"],
        }
    )
    span = otlp.span("embed", attributes=attributes)
    span.events.extend(Span.Event(name=f"chunk {index}") for index in range(128))
    span.links.extend(
        Span.Link(trace_id=otlp.new_trace_id(), span_id=otlp.new_span_id()) for _ in range(128)
    )
    send(collector, span)

    found = stored(collector, span)

    assert found["attributes"] == attributes
    assert (len(found["events"]), len(found["links"])) == (128, 128)
    assert found["input"] == prompt


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.usage.input_tokens": "²"},  # a digit to str.isdigit(), not to int()
        {"gen_ai.usage.input_tokens": "9" * 5_000},  # too many digits for int()
        {"gen_ai.usage.input_tokens": 2**62},  # two of them overflow SQLite's integers
        {"gen_ai.usage.output_tokens": 1e300},
        {"http.method": "GET", "http.status_code": 1e300},
        {"input.value": "[" * 100_000},  # JSON text nested too deep to read
        {"gen_ai.input.messages": "[" * 100_000},
    ],
)
def test_an_odd_value_where_a_count_or_text_is_read_never_fails_an_export(
    collector: LiveCollector, attributes: dict[str, Any]
) -> None:
    trace_id, root_id = otlp.new_trace_id(), otlp.new_span_id()
    common = {"session.id": "odd", **attributes}
    root = otlp.span("turn", trace_id=trace_id, span_id=root_id, attributes=common)
    child = otlp.span("llm", trace_id=trace_id, parent=root_id, attributes=common)
    send(collector, root, child, scope="neatlogs_web")

    session = collector.get("/api/sessions/odd")
    trace = collector.get("/api/traces/" + trace_id.hex())

    assert (session.status_code, trace.status_code) == (200, 200)
    assert session.json()["span_count"] == 2
    assert len(trace.json()["spans"]) == 2


def test_a_trace_answer_stops_at_16_mib_and_counts_the_spans_left_out(
    collector: LiveCollector,
) -> None:
    trace_id = otlp.new_trace_id()
    spans = [
        otlp.span(f"step {index}", trace_id=trace_id, start_ms=index, attributes={"doc": "x" * MIB})
        for index in range(24)
    ]
    for batch in (spans[:8], spans[8:16], spans[16:]):
        send(collector, *batch)

    answer = collector.get("/api/traces/" + trace_id.hex())

    assert answer.status_code == 200
    assert len(answer.content) <= 16 * MIB
    body = answer.json()
    shown = [span["name"] for span in body["spans"]]
    assert shown == [f"step {index}" for index in range(len(shown))]  # the earliest
    assert body["span_count"] == 24
    assert body["spans_omitted"] == 24 - len(shown) > 0


def test_a_turn_shows_100_background_traces_and_counts_the_others(
    collector: LiveCollector,
) -> None:
    request_trace, request_span = otlp.new_trace_id(), otlp.new_span_id()
    session = {"session.id": "busy-turn"}
    send(
        collector,
        otlp.span(
            "POST /chat",
            trace_id=request_trace,
            span_id=request_span,
            kind=Span.SPAN_KIND_SERVER,
            attributes={**session, "http.request.method": "POST"},
        ),
        scope="fastapi",
    )
    # A turn with an input, then 120 later traces of the same request without one.
    linked = [otlp.span("turn", attributes={**session, "input.value": "hi"})]
    linked += [otlp.span("background", start_ms=i, attributes=session) for i in range(1, 121)]
    for work in linked:
        work.links.add(trace_id=request_trace, span_id=request_span)
    send(collector, *linked, scope="neatlogs_web")

    (entry,) = collector.get("/api/sessions/busy-turn").json()["traces"]

    assert entry["name"] == "turn"
    assert [part["name"] for part in entry["parts"]] == ["background"] * 100
    assert entry["parts_omitted"] == 20


def test_a_session_page_past_16_mib_ends_early_and_next_continues_it(
    collector: LiveCollector,
) -> None:
    # Control characters take six bytes each in JSON ("\u0001"): 500 turns of the
    # longest names and texts a trace row keeps make about 20 MiB.
    wide = "\x01"
    turns = [
        otlp.span(
            wide * 1_000,
            start_ms=index,
            attributes={
                "session.id": "wide",
                "user.id": wide * 1_000,
                "input.value": wide * 2_000,
                "output.value": wide * 2_000,
            },
        )
        for index in range(500)
    ]
    send(collector, *turns, resource={"service.name": wide * 1_000})

    first = collector.get("/api/sessions/wide", limit="500")
    after = first.json()["next"]
    second = collector.get("/api/sessions/wide", limit="500", after=after)

    assert len(first.content) <= 16 * MIB
    assert after is not None
    seen = [t["trace_id"] for page in (first, second) for t in page.json()["traces"]]
    assert 0 < len(first.json()["traces"]) < 500
    assert seen == [turn.trace_id.hex() for turn in turns]
    assert second.json()["next"] is None
