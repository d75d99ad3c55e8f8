"""What a person felt and said about a turn, as a real Phoenix shows it.

A FastAPI app (its own telemetry on) with the middleware and ``feedback=True``
runs on uvicorn on 127.0.0.1 and exports to a real Phoenix with
``init(backend="phoenix")``. Alice asks a question whose answer streams, its
first words after a known delay; she judges the turn with the token its
response carried, through the built-in ``POST /neatlogs/feedback``. Mallory
tries Alice's token from her own session, Alice a tampered copy of it, and
Bob a token past ``feedback_max_age``. Read back through Phoenix's own REST
and GraphQL API: the delay on the turn, the turn in Alice's session, her
judgment as the feedback span in that trace and as a span annotation on the
turn's span, and nothing at all of the refused attempts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import StreamingResponse

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from tests.backends.phoenix_client import PhoenixClient, Span, settled, wait_for
from tests.backends.phoenix_server import PhoenixServer
from tests.pipeline import judgments_attempted, own_pipeline
from tests.servers import run_uvicorn
from tests.tokens import session_of

pytestmark = pytest.mark.backends

PROJECT = "turn-feedback"
FIRST_WORDS_S = 0.4
#: Seconds a feedback token stays good here: Bob's is kept until it is older.
MAX_AGE_S = 2
TOKEN_HEADER = "x-neatlogs-feedback-token"
SESSION_HEADER = "x-neatlogs-session-id"
FEEDBACK = "/neatlogs/feedback"
FIRST_CHUNK_KEY = "neatlogs.response.time_to_first_chunk"
JUDGMENT = {"score": 1, "label": "thumbs-up", "comment": "spot on"}


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        NeatlogsSessionMiddleware,
        secret_key="phoenix-feedback-secret",
        feedback=True,
        feedback_max_age=MAX_AGE_S,
    )

    @app.get("/answer")
    async def answer(q: str) -> StreamingResponse:
        with neatlogs_web.trace("turn", input=q):
            neatlogs_web.set_output("Hello, world")

        async def words() -> AsyncIterator[str]:
            await asyncio.sleep(FIRST_WORDS_S)
            yield "Hello"
            await asyncio.sleep(0.1)
            yield ", world"

        return StreamingResponse(words(), media_type="text/plain")

    return app


@dataclass(frozen=True)
class Asked:
    """One streamed answer as its client saw it."""

    session_id: str
    feedback_token: str
    first_words_s: float

    @property
    def trace_id(self) -> str:
        return self.feedback_token[:32]

    @property
    def turn_span_id(self) -> str:
        return self.feedback_token[33:49]


def ask(client: httpx.Client, question: str) -> Asked:
    sent = time.perf_counter()
    first = None
    with client.stream("GET", "/answer", params={"q": question}) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if chunk and first is None:
                first = time.perf_counter() - sent
    assert first is not None
    return Asked(
        session_of(response.headers[SESSION_HEADER]), response.headers[TOKEN_HEADER], first
    )


def tampered(token: str) -> str:
    """``token`` naming another trace (its first hex digit changed) under the same signature."""
    return ("1" if token[0] == "0" else "0") + token[1:]


@dataclass(frozen=True)
class Visit:
    alice: Asked
    bob: Asked
    mallory: Asked
    answers: dict[str, int]
    stats: dict[str, Any]
    spans: list[Span]
    annotations: list[dict[str, Any]]

    def turn(self, asked: Asked) -> Span:
        (turn,) = [s for s in self.spans if s.name == "turn" and s.trace_id == asked.trace_id]
        return turn


def visit(base: str) -> tuple[Asked, Asked, Asked, dict[str, int]]:
    with (
        httpx.Client(base_url=base, timeout=30) as alice,
        httpx.Client(base_url=base, timeout=30) as bob,
        httpx.Client(base_url=base, timeout=30) as mallory,
    ):
        bobs = ask(bob, "bob's question")
        bob_asked_at = time.monotonic()
        mallorys = ask(mallory, "mallory's question")
        # Judged at once: well within feedback_max_age (its timestamp counts whole seconds).
        alices = ask(alice, "alice's question")
        answers = {
            "judged": alice.post(FEEDBACK, json={"token": alices.feedback_token, **JUDGMENT}),
            "foreign": mallory.post(FEEDBACK, json={"token": alices.feedback_token, "score": 0}),
            "tampered": alice.post(
                FEEDBACK, json={"token": tampered(alices.feedback_token), "score": 0}
            ),
        }
        time.sleep(max(0.0, bob_asked_at + MAX_AGE_S + 1.2 - time.monotonic()))
        answers["expired"] = bob.post(FEEDBACK, json={"token": bobs.feedback_token, "score": 0})
    return alices, bobs, mallorys, {name: r.status_code for name, r in answers.items()}


@pytest.fixture(scope="module")
def judged(phoenix_server: PhoenixServer) -> Iterator[Visit]:
    with own_pipeline(
        endpoint=phoenix_server.url, workflow_name=PROJECT, backend="phoenix", schedule_delay_ms=50
    ):
        with run_uvicorn(make_app()) as base:
            alice, bob, mallory, answers = visit(base)
        assert neatlogs_web.flush(10), "neatlogs_web did not export every span"
        stats = judgments_attempted(1)
    with PhoenixClient(phoenix_server.url) as phoenix:
        spans = wait_for(lambda: phoenix.spans(PROJECT), settled(), timeout_s=30)
        turns = [s.span_id for s in spans if s.name == "turn"]
        # Phoenix files annotations in the background, like spans.
        annotations = wait_for(
            lambda: phoenix.span_annotations(PROJECT, turns), settled(), timeout_s=30
        )
    yield Visit(alice, bob, mallory, answers, stats, spans, annotations)


def test_the_turn_shows_when_the_first_words_reached_the_person(judged: Visit) -> None:
    figure = judged.turn(judged.alice).attribute(FIRST_CHUNK_KEY)
    assert FIRST_WORDS_S <= figure <= judged.alice.first_words_s + 0.05, (
        figure,
        judged.alice.first_words_s,
    )


def test_the_session_in_phoenix_has_the_turn(phoenix: PhoenixClient, judged: Visit) -> None:
    session = phoenix.session(PROJECT, judged.alice.session_id)
    assert session is not None
    assert [trace.trace_id for trace in session.traces] == [judged.alice.trace_id]
    assert session.first_input == "alice's question"


def test_the_judgment_is_the_feedback_span_in_the_turns_trace(judged: Visit) -> None:
    assert judged.answers["judged"] == 204
    (feedback,) = [s for s in judged.spans if s.name == "feedback"]
    assert feedback.trace_id == judged.alice.trace_id
    assert feedback.parent_id == judged.turn(judged.alice).span_id == judged.alice.turn_span_id
    assert feedback.attribute("session.id") == judged.alice.session_id
    assert [feedback.attribute(f"neatlogs.feedback.{key}") for key in JUDGMENT] == [
        1.0,
        "thumbs-up",
        "spot on",
    ]


def test_the_judgment_is_a_span_annotation_on_the_turn(judged: Visit) -> None:
    (annotation,) = judged.annotations
    (feedback,) = [s for s in judged.spans if s.name == "feedback"]
    assert annotation["span_id"] == judged.turn(judged.alice).span_id
    assert (annotation["name"], annotation["annotator_kind"]) == ("feedback", "HUMAN")
    assert annotation["result"] == {"score": 1.0, "label": "thumbs-up", "explanation": "spot on"}
    assert annotation["identifier"] == feedback.span_id
    assert (judged.stats["native_feedback_sent"], judged.stats["native_feedback_failed"]) == (1, 0)


def test_refused_judgments_change_nothing_in_phoenix(judged: Visit) -> None:
    assert {name: judged.answers[name] for name in ("foreign", "tampered", "expired")} == {
        "foreign": 403,
        "tampered": 403,
        "expired": 410,
    }
    # One feedback span and one annotation, Alice's: nothing on Bob's or Mallory's
    # turns, nothing more on Alice's.
    assert [s.trace_id for s in judged.spans if s.name == "feedback"] == [judged.alice.trace_id]
    assert [a["span_id"] for a in judged.annotations] == [judged.alice.turn_span_id]
    assert {judged.turn(judged.bob).span_id, judged.turn(judged.mallory).span_id}.isdisjoint(
        a["span_id"] for a in judged.annotations
    )
