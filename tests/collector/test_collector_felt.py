"""What the person felt, through the collector's JSON API: the felt-latency figures the
middleware puts on each turn's root span, and the feedback spans (children of the
turn's span, in its trace) that judge a turn however late, and in whichever export,
they arrive.

Spans go over real OTLP/HTTP to a collector on loopback and are read back through its
JSON API; the last test runs a real app (middleware, exporter) against it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.responses import StreamingResponse

import neatlogs_web
from neatlogs_web._tracing.feedback import FEEDBACK_SPAN_NAME
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.collector import Store, StoreError
from neatlogs_web.collector.schema import SCHEMA_VERSION
from tests.collector import otlp_data as otlp
from tests.collector.conversations import Judged, feedback_span, felt_attributes
from tests.collector.live import LiveCollector
from tests.pipeline import reset_global_tracer_provider
from tests.servers import run_uvicorn

RESOURCE = {"service.name": "support-bot"}


def figures(first_chunk: float, duration: float | None = None) -> dict[str, Any]:
    """A turn's felt-latency attributes, in seconds: 50 ms to the headers."""
    return felt_attributes(first_chunk, duration, start=0.05)


class Turn:
    """A turn exported to the collector: its root span, and a child LLM call."""

    def __init__(
        self,
        collector: LiveCollector,
        session: str,
        *,
        at_s: float,
        felt: dict[str, Any] | None = None,
        export: bool = True,
    ) -> None:
        self.collector = collector
        self.session = session
        self.trace_id, self.span_id = otlp.new_trace_id(), otlp.new_span_id()
        self.spans = [
            otlp.span(
                "turn",
                trace_id=self.trace_id,
                span_id=self.span_id,
                start_ms=at_s * 1000,
                duration_ms=2400,
                attributes={"session.id": session, "input.value": f"{session} at {at_s}"},
            ),
            otlp.span(
                "llm",
                trace_id=self.trace_id,
                parent=self.span_id,
                start_ms=at_s * 1000 + 100,
                duration_ms=2000,
                attributes={"gen_ai.request.model": "m"},
            ),
        ]
        self.spans[0].attributes.extend(otlp.kvs(felt or {}))
        if export:
            self.export()

    @property
    def id(self) -> str:
        return self.trace_id.hex()

    def export(self) -> None:
        self.collector.send(*self.spans, resource=RESOURCE, scope="neatlogs_web")

    def judge(self, at_s: float, **judgment: Any) -> None:
        """A person's judgment of this turn, at `at_s`, in an export of its own."""
        feedback = feedback_span(
            Judged(at_s, **judgment),
            self.trace_id,
            self.span_id,
            turn_start_ms=0,
            attributes={"session.id": self.session},
        )
        self.collector.send(feedback, resource=RESOURCE, scope="neatlogs_web")


def session(collector: LiveCollector, session_id: str) -> dict[str, Any]:
    answer = collector.get(f"/api/sessions/{session_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def listed(collector: LiveCollector, **params: str) -> list[str]:
    answer = collector.get("/api/sessions", **params)
    assert answer.status_code == 200, answer.text
    return [row["session_id"] for row in answer.json()["sessions"]]


def thumbs(entry: dict[str, Any]) -> list[tuple[str | None, str | None, str | None]]:
    return [(j["thumb"], j["label"], j["comment"]) for j in entry["judgments"]]


# ------------------------------------------------------------------ felt latency


def test_a_turn_says_when_the_first_words_came_and_when_the_answer_ended(
    collector: LiveCollector,
) -> None:
    whole = Turn(collector, "conv", at_s=0, felt=figures(1.8, 6.2))
    Turn(collector, "conv", at_s=10, felt=figures(0.4))  # the person left mid-answer
    Turn(collector, "conv", at_s=20)  # not a web request: nothing measured

    entries = session(collector, "conv")["traces"]

    assert [(e["response"], e["complete"]) for e in entries] == [
        (
            {
                "time_to_start_ms": 50.0,
                "time_to_first_chunk_ms": 1800.0,
                "duration_ms": 6200.0,
                "complete": True,
            },
            True,
        ),
        (
            {
                "time_to_start_ms": 50.0,
                "time_to_first_chunk_ms": 400.0,
                "duration_ms": None,
                "complete": False,
            },
            False,
        ),
        (None, None),
    ]
    trace = collector.get(f"/api/traces/{whole.id}").json()
    assert (trace["response"], trace["complete"]) == (entries[0]["response"], True)
    # The neatlogs backend's export marker is a field of its own, never "complete".
    assert trace["neatlogs_trace_complete"] is False


def test_a_session_has_the_median_and_worst_wait_for_first_words_of_its_turns(
    collector: LiveCollector,
) -> None:
    for at_s, first_chunk in enumerate((0.4, 2.0, 1.0, 3.0)):
        Turn(collector, "conv", at_s=at_s * 10, felt=figures(first_chunk, first_chunk + 1))
    Turn(collector, "conv", at_s=50)  # measured nothing: not a wait of zero
    # The framework's request span carries the figures too: a request, not a turn.
    collector.send(
        otlp.span(
            "POST /chat",
            start_ms=60_000,
            kind=Span.SPAN_KIND_SERVER,
            attributes={"session.id": "conv", "http.route": "/chat", **figures(9.0, 9.5)},
        ),
        resource=RESOURCE,
        scope="fastapi",
    )

    waits = {"median": 1500.0, "worst": 3000.0}
    assert session(collector, "conv")["time_to_first_chunk_ms"] == waits
    (row,) = collector.get("/api/sessions").json()["sessions"]
    assert (row["turn_count"], row["time_to_first_chunk_ms"]) == (5, waits)

    Turn(collector, "conv", at_s=70, felt=figures(5.0, 6.0))  # a later export
    waits = {"median": 2000.0, "worst": 5000.0}
    assert session(collector, "conv")["time_to_first_chunk_ms"] == waits


def test_the_list_sorts_sessions_by_their_longest_wait_for_first_words(
    collector: LiveCollector,
) -> None:
    Turn(collector, "slow", at_s=0, felt=figures(8.0, 9.0))
    Turn(collector, "slow", at_s=5, felt=figures(0.2, 1.0))
    Turn(collector, "middling", at_s=10, felt=figures(3.0, 4.0))
    Turn(collector, "unmeasured", at_s=20)
    Turn(collector, "quick", at_s=30, felt=figures(0.5, 1.0))

    assert listed(collector) == ["quick", "unmeasured", "middling", "slow"]
    assert listed(collector, sort="wait") == ["slow", "middling", "quick"]
    seen, cursor = [], None
    while True:
        params = {"sort": "wait", "limit": "1", **({"before": cursor} if cursor else {})}
        answer = collector.get("/api/sessions", **params).json()
        seen += [row["session_id"] for row in answer["sessions"]]
        cursor = answer["next"]
        if cursor is None:
            break
    assert seen == ["slow", "middling", "quick"]

    recent_cursor = collector.get("/api/sessions", limit="1").json()["next"]
    refused = collector.get("/api/sessions", sort="wait", before=recent_cursor)
    assert refused.status_code == 400
    assert "before" in refused.json()["error"]
    assert collector.get("/api/sessions", sort="longest").status_code == 400


# ----------------------------------------------------------------------- feedback


def test_feedback_arriving_after_its_turn_judges_it_and_counts_in_its_session(
    collector: LiveCollector,
) -> None:
    turn = Turn(collector, "conv", at_s=0, felt=figures(0.8, 2.0))
    before = session(collector, "conv")
    assert (before["turn_count"], before["span_count"], before["duration_ms"]) == (1, 2, 2400)

    turn.judge(300, score=0.0, label="wrong", comment="it cited the wrong ticket")
    after = session(collector, "conv")

    # A judgment is no span, no turn and no time spent on the turn.
    for key in ("turn_count", "trace_count", "span_count", "duration_ms", "last_seen"):
        assert after[key] == before[key], key
    (entry,) = after["traces"]
    assert entry["duration_ms"] == 2400
    assert thumbs(entry) == [("down", "wrong", "it cited the wrong ticket")]
    assert entry["feedback"] == after["feedback"] == {"up": 0, "down": 1, "count": 1}

    turn.judge(400, score=1, comment="fixed after a retry")
    (entry,) = session(collector, "conv")["traces"]
    assert thumbs(entry) == [  # the latest first
        ("up", None, "fixed after a retry"),
        ("down", "wrong", "it cited the wrong ticket"),
    ]
    (row,) = collector.get("/api/sessions").json()["sessions"]
    assert (row["turn_count"], row["feedback"]) == (1, {"up": 1, "down": 1, "count": 2})
    trace = collector.get(f"/api/traces/{turn.id}").json()
    assert [span["name"] for span in trace["spans"]] == ["turn", "llm"]
    assert (trace["spans_omitted"], thumbs(trace)) == (0, thumbs(entry))


def test_feedback_arriving_before_its_turn_waits_for_it(collector: LiveCollector) -> None:
    # The turn ran in one worker, the judgment in another whose export came first.
    turn = Turn(collector, "conv", at_s=0, export=False)
    turn.judge(60, score=0, label="slow")

    assert collector.get("/api/sessions").json()["sessions"] == []
    assert collector.get(f"/api/traces/{turn.id}").status_code == 404

    turn.export()
    body = session(collector, "conv")
    (entry,) = body["traces"]
    assert (entry["name"], body["turn_count"], body["span_count"]) == ("turn", 1, 2)
    assert thumbs(entry) == [("down", "slow", None)]
    assert body["feedback"] == {"up": 0, "down": 1, "count": 1}


def test_a_score_from_one_half_up_is_a_thumbs_up(collector: LiveCollector) -> None:
    turn = Turn(collector, "conv", at_s=0)
    for at_s, score in enumerate((0.5, 0.49, 1, 0), start=1):
        turn.judge(at_s, score=score)
    turn.judge(5, label="off-topic")  # no score: neither up nor down

    body = session(collector, "conv")

    judgments = body["traces"][0]["judgments"]  # the latest first
    assert [j["thumb"] for j in judgments] == [None, "down", "up", "down", "up"]
    assert [j["score"] for j in judgments] == [None, 0.0, 1.0, 0.49, 0.5]
    assert body["feedback"] == {"up": 2, "down": 2, "count": 5}


def test_the_list_keeps_sessions_with_negative_feedback(collector: LiveCollector) -> None:
    Turn(collector, "liked", at_s=0).judge(1, score=1)
    mixed = Turn(collector, "mixed", at_s=10)
    mixed.judge(11, score=1)
    mixed.judge(12, score=0)
    Turn(collector, "labelled", at_s=20).judge(21, label="too long")
    Turn(collector, "unjudged", at_s=30)

    assert listed(collector, feedback="negative") == ["mixed"]
    assert listed(collector, feedback="positive") == ["mixed", "liked"]
    assert listed(collector, feedback="negative", sort="wait") == []  # nothing measured
    refused = collector.get("/api/sessions", feedback="bad")
    assert refused.status_code == 400
    assert "feedback" in refused.json()["error"]


def test_a_span_of_the_app_named_feedback_stays_a_span(collector: LiveCollector) -> None:
    collector.send(
        otlp.span(FEEDBACK_SPAN_NAME, attributes={"session.id": "conv", "form": "survey"}),
        resource=RESOURCE,
    )

    body = session(collector, "conv")

    assert (body["turn_count"], body["traces"][0]["name"]) == (1, FEEDBACK_SPAN_NAME)
    assert body["feedback"] == {"up": 0, "down": 0, "count": 0}


# ---------------------------------------------------------------------- upgrade


def test_a_database_of_version_3_is_upgraded_with_its_figures_and_judgments(
    old_database: Callable[[int], Path],
) -> None:
    path = old_database(3)

    with LiveCollector(path) as live:
        body = session(live, "conv-1")
        # Version 3 counted each judgment as a span of its turn, and stretched the turn
        # to it: back to the turn's own spans and times.
        assert (body["turn_count"], body["span_count"], body["duration_ms"]) == (2, 2, 13_000)
        assert [e["duration_ms"] for e in body["traces"]] == [2000, 3000]
        assert [e["complete"] for e in body["traces"]] == [True, False]
        assert body["traces"][0]["response"]["time_to_first_chunk_ms"] == 800
        assert body["time_to_first_chunk_ms"] == {"median": 1600.0, "worst": 2400.0}
        assert [thumbs(e) for e in body["traces"]] == [
            [("up", None, None)],
            [("down", "cut off", "it stopped mid-sentence")],
        ]
        assert listed(live, feedback="negative") == ["conv-1"]
        assert listed(live, sort="wait") == ["conv-1"]
        assert session(live, "quiet")["time_to_first_chunk_ms"] is None
        # A judgment that comes after the upgrade joins the upgraded ones.
        feedback = feedback_span(
            Judged(300, score=0.0),
            bytes.fromhex(body["traces"][0]["trace_id"]),
            bytes.fromhex("0000000000000002"),  # the turn's span, as the dump has it
            turn_start_ms=0,
            attributes={"session.id": "conv-1"},
        )
        live.send(feedback, resource={"service.name": "support-bot"}, scope="neatlogs_web")
        assert session(live, "conv-1")["feedback"] == {"up": 1, "down": 2, "count": 3}

    with sqlite3.connect(path) as upgraded:
        assert upgraded.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    upgraded.close()


def test_an_upgrade_that_fails_leaves_the_file_as_it_was(
    old_database: Callable[[int], Path],
) -> None:
    path = old_database(3)
    with sqlite3.connect(path) as broken:  # a root span's attributes cut short
        cut = '{"neatlogs.response.duration": 2.'
        broken.execute("UPDATE spans SET attributes = ? WHERE name = 'turn'", (cut,))
    broken.close()

    with pytest.raises(StoreError, match=r"could not be upgraded .* it is unchanged"):
        Store(path)

    with sqlite3.connect(path) as same:
        assert same.execute("PRAGMA user_version").fetchone() == (3,)
        columns = {row[1] for row in same.execute("PRAGMA table_info(traces)")}
        assert "complete" in columns and "neatlogs_complete" not in columns
        assert same.execute("SELECT count(*) FROM sessions").fetchone() == (2,)
        assert same.execute("SELECT count(*) FROM spans WHERE marker").fetchone() == (0,)
    same.close()


# ---------------------------------------------------------------- a real app

FIRST_WORDS_S = 0.3
REST_S = 0.2


def streaming_app() -> FastAPI:
    """A chat turn whose answer streams: its first words after `FIRST_WORDS_S`, the rest
    `REST_S` later; each response carries a feedback token for its turn."""
    app = FastAPI()
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="felt-secret", feedback=True)

    async def words() -> AsyncIterator[str]:
        await asyncio.sleep(FIRST_WORDS_S)
        yield "Hello"
        await asyncio.sleep(REST_S)
        yield ", world"

    @app.get("/chat")
    async def chat(q: str) -> StreamingResponse:
        with neatlogs_web.trace("turn", input=q):
            neatlogs_web.set_output("Hello, world")
        return StreamingResponse(words(), media_type="text/plain")

    return app


def test_a_real_apps_figures_and_feedback_reach_the_collector(collector: LiveCollector) -> None:
    neatlogs_web.shutdown()
    reset_global_tracer_provider()
    neatlogs_web.init(
        endpoint=collector.url,
        workflow_name="support-bot",
        schedule_delay_ms=20,
        flush_on_sigterm=False,
    )
    try:
        with run_uvicorn(streaming_app()) as base, httpx.Client(base_url=base) as client:
            sent = time.perf_counter()
            with client.stream("GET", "/chat", params={"q": "hello?"}) as response:
                chunks = response.iter_bytes()
                next(chunks)
                first_words = time.perf_counter() - sent
                for _ in chunks:
                    pass
            answered = time.perf_counter() - sent
            token = response.headers["x-neatlogs-feedback-token"]
            judged = client.post(
                "/neatlogs/feedback", json={"token": token, "score": 0, "comment": "slow"}
            )
            assert judged.status_code == 204, judged.text
        assert neatlogs_web.flush(10)
    finally:
        neatlogs_web.shutdown()
        reset_global_tracer_provider()

    (row,) = collector.get("/api/sessions").json()["sessions"]
    body = session(collector, row["session_id"])
    (entry,) = body["traces"]
    felt = entry["response"]
    assert FIRST_WORDS_S * 1000 <= felt["time_to_first_chunk_ms"] <= first_words * 1000
    assert felt["time_to_first_chunk_ms"] <= felt["duration_ms"] <= answered * 1000
    assert (entry["complete"], felt["complete"]) == (True, True)
    assert body["time_to_first_chunk_ms"] == {
        "median": felt["time_to_first_chunk_ms"],
        "worst": felt["time_to_first_chunk_ms"],
    }
    assert (body["turn_count"], thumbs(entry)) == (1, [("down", None, "slow")])
    assert listed(collector, feedback="negative") == [row["session_id"]]
