"""What the person felt, from senders that get it wrong: a judgment stamped with another
session or workflow than its turn, arriving before the turn's own spans, still judges
its turn and never decides where the turn is filed; a felt-latency figure no one could
have waited is ignored, and the export's answer counts it.

Spans go over real OTLP/HTTP to a collector on loopback and are read back through its
JSON API.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from neatlogs_web._tracing.felt_latency import COMPLETE_KEY, DURATION_KEY, TIME_TO_FIRST_CHUNK_KEY
from tests.collector import otlp_data as otlp
from tests.collector.conversations import Judged, feedback_span, felt_attributes
from tests.collector.live import LiveCollector
from tests.collector.test_collector_felt import listed, session, thumbs

APP = {"service.name": "support-bot"}


class RequestTurn:
    """A turn under a framework's request span (the trace's root): the turn's own span
    carries its session, the request's carries one only when asked."""

    def __init__(self, session_id: str, *, session_on_request: bool = False) -> None:
        self.trace_id = otlp.new_trace_id()
        self.turn_id, request_id = otlp.new_span_id(), otlp.new_span_id()
        self.request = otlp.span(
            "POST /chat",
            trace_id=self.trace_id,
            span_id=request_id,
            duration_ms=3000,
            kind=Span.SPAN_KIND_SERVER,
            attributes={
                "http.request.method": "POST",
                "http.route": "/chat",
                **({"session.id": session_id} if session_on_request else {}),
            },
        )
        self.turn = otlp.span(
            "turn",
            trace_id=self.trace_id,
            span_id=self.turn_id,
            parent=request_id,
            start_ms=5,
            duration_ms=2400,
            attributes={"session.id": session_id, "input.value": "my question"},
        )

    def judgment(self, session_id: str) -> Span:
        """A thumbs down on this turn, sent from `session_id`."""
        return feedback_span(
            Judged(60, score=0),
            self.trace_id,
            self.turn_id,
            turn_start_ms=0,
            attributes={"session.id": session_id},
        )


def sessions_and_workflows(collector: LiveCollector) -> list[tuple[str, str]]:
    answer = collector.get("/api/sessions")
    assert answer.status_code == 200, answer.text
    return [(row["session_id"], row["workflow"]) for row in answer.json()["sessions"]]


# ----------------------------------------------------------------------- feedback


@pytest.mark.parametrize("session_on_request", [False, True], ids=["turn-only", "request-too"])
@pytest.mark.parametrize("earlier_export", [True, False], ids=["earlier-export", "same-export"])
def test_a_judgment_from_another_session_judges_its_turn_and_never_moves_it(
    collector: LiveCollector, earlier_export: bool, session_on_request: bool
) -> None:
    turn = RequestTurn("conv", session_on_request=session_on_request)
    judgment = turn.judgment("another-tab")  # the page sent it from another session
    if earlier_export:
        collector.send(judgment, resource=APP, scope="neatlogs_web")
        collector.send(turn.request, turn.turn, resource=APP, scope="neatlogs_web")
    else:
        collector.send(judgment, turn.request, turn.turn, resource=APP, scope="neatlogs_web")

    assert sessions_and_workflows(collector) == [("conv", "support-bot")]
    assert collector.get("/api/sessions/another-tab").status_code == 404
    body = session(collector, "conv")
    (entry,) = body["traces"]
    assert (entry["input"], body["turn_count"], body["span_count"]) == ("my question", 1, 2)
    assert thumbs(entry) == [("down", None, None)]
    assert body["feedback"] == {"up": 0, "down": 1, "count": 1}
    assert listed(collector, feedback="negative") == ["conv"]


def test_a_judgment_from_another_app_never_decides_its_turns_workflow(
    collector: LiveCollector,
) -> None:
    turn = RequestTurn("conv")
    # A service of its own relays the judgments; its export comes first, then the turn's
    # span, and the framework's request span last.
    collector.send(turn.judgment("relay"), resource={"service.name": "feedback-relay"})
    collector.send(turn.turn, resource=APP, scope="neatlogs_web")

    assert sessions_and_workflows(collector) == [("conv", "support-bot")]

    collector.send(turn.request, resource=APP, scope="fastapi")

    assert sessions_and_workflows(collector) == [("conv", "support-bot")]
    (entry,) = session(collector, "conv")["traces"]
    assert (entry["name"], thumbs(entry)) == ("POST /chat", [("down", None, None)])


# -------------------------------------------------------------------- figures


def measured_turn(session_id: str, at_s: float, **figures: Any) -> Span:
    """A turn's root span carrying its figures: 50 ms to the headers, 0.8 s to the first
    words and 2 s to the end, unless `figures` (by key) say otherwise."""
    attributes = {"session.id": session_id, **felt_attributes(0.8, 2.0, start=0.05), **figures}
    return otlp.span("turn", start_ms=at_s * 1000, duration_ms=2400, attributes=attributes)


def answer_of(response: Any) -> ExportTraceServiceResponse:
    return ExportTraceServiceResponse.FromString(response.content)


def test_figures_no_one_could_have_waited_are_ignored_and_counted(
    collector: LiveCollector,
) -> None:
    fine = collector.send(measured_turn("fine", 0, **{TIME_TO_FIRST_CHUNK_KEY: 1.5}), resource=APP)
    assert not answer_of(fine).HasField("partial_success")

    unreadable = [9.99e8, 86_401.0, -0.5, math.nan, math.inf, "0.8", True]
    spans = [
        measured_turn("bad", at_s, **{TIME_TO_FIRST_CHUNK_KEY: value})
        for at_s, value in enumerate(unreadable, start=10)
    ]
    spans.append(measured_turn("bad", 20, **{DURATION_KEY: 2 * 86_400.0, COMPLETE_KEY: "yes"}))
    answer = answer_of(collector.send(*spans, resource=APP))

    # All spans are stored; the sender is told how many figures were left out.
    assert answer.partial_success.rejected_spans == 0
    assert "9 felt-latency figure(s)" in answer.partial_success.error_message
    assert listed(collector, sort="wait") == ["fine", "bad"]  # by the waits that were read
    body = session(collector, "bad")
    assert body["turn_count"] == 8
    assert body["time_to_first_chunk_ms"] == {"median": 800.0, "worst": 800.0}
    assert [e["response"]["time_to_first_chunk_ms"] for e in body["traces"]] == [None] * 7 + [800.0]
    last = body["traces"][-1]["response"]
    assert (last["time_to_start_ms"], last["duration_ms"], last["complete"]) == (50.0, None, None)
