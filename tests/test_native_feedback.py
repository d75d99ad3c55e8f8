"""A judgment lands where the configured backend keeps judgments: a Langfuse score,
a Phoenix span annotation, besides the feedback span every backend gets.

A real uvicorn on 127.0.0.1 serves an app with ``feedback=True``; a real HTTP
client judges a turn through ``POST /neatlogs/feedback``; spans go over
OTLP/HTTP to a receiver on 127.0.0.1 that also stands in for the backend's
own JSON API (there is no Langfuse server here: the score's path is proven
against this stand-in; Phoenix's against a real Phoenix in
``tests/backends/test_phoenix_feedback.py``). What the stand-in received is
decoded and asserted: where it went, with which credentials, naming which
turn.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import neatlogs_web
from tests.apps import make_asgi_app
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.pipeline import judgments_attempted
from tests.servers import run_uvicorn

TOKEN_HEADER = "x-neatlogs-feedback-token"
ENDPOINT = "/neatlogs/feedback"
LANGFUSE_KEY = "pk-lf-public:sk-lf-secret"


@pytest.fixture
def app_base(fresh_global_provider: None) -> Iterator[str]:
    with run_uvicorn(make_asgi_app(feedback=True)) as base:
        yield base


def init(receiver: OTLPReceiver, endpoint_path: str = "", **options: Any) -> None:
    neatlogs_web.init(
        endpoint=receiver.url + endpoint_path,
        schedule_delay_ms=20,
        flush_on_sigterm=False,
        **options,
    )


def judge(client: httpx.Client, **judgment: Any) -> tuple[str, httpx.Response]:
    """One turn, then a judgment of it with its token: (the token, the answer)."""
    token = client.get("/whoami").headers[TOKEN_HEADER]
    return token, client.post(ENDPOINT, json={"token": token, **judgment})


def feedback_spans(receiver: OTLPReceiver, count: int) -> list[ReceivedSpan]:
    assert neatlogs_web.flush(10)
    spans = receiver.wait_for(lambda s: sum(x.name == "feedback" for x in s) >= count)
    return [span for span in spans if span.name == "feedback"]


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(key.encode()).decode()


def test_langfuse_feedback_is_a_score_of_the_turn(receiver: OTLPReceiver, app_base: str) -> None:
    # Langfuse's OTLP path is enough to tell the backend.
    init(receiver, "/api/public/otel", api_key=LANGFUSE_KEY)
    with httpx.Client(base_url=app_base) as alice, httpx.Client(base_url=app_base) as mallory:
        thumbs_token, thumbs = judge(alice, score=1, label="helpful", comment="just right")
        _, labelled = judge(alice, label="off-topic")
        _, commented = judge(alice, comment="no score, no label")
        mallory.get("/whoami")
        foreign = mallory.post(ENDPOINT, json={"token": thumbs_token, "score": 0})
    assert [r.status_code for r in (thumbs, labelled, commented, foreign)] == [204, 204, 204, 403]
    spans = feedback_spans(receiver, 3)
    assert len(spans) == 3
    export = judgments_attempted(2)
    assert (export["native_feedback_sent"], export["native_feedback_failed"]) == (2, 0)
    # Spans and scores went to Langfuse's paths, with its Basic auth.
    assert set(receiver.received.paths) == {"/api/public/otel/v1/traces"}
    assert {h["authorization"] for h in receiver.received.requests} == {basic(LANGFUSE_KEY)}
    calls = receiver.api_calls
    assert {call.path for call in calls} == {"/api/public/scores"}
    assert {call.headers["authorization"] for call in calls} == {basic(LANGFUSE_KEY)}
    # A comment alone is no score; the others name the turn the feedback span judged.
    by_comment = {span.attributes.get("neatlogs.feedback.comment"): span for span in spans}
    thumbs_span = by_comment["just right"]
    label_span = next(
        s for s in spans if s.attributes.get("neatlogs.feedback.label") == "off-topic"
    )
    assert sorted((call.body for call in calls), key=lambda body: body["dataType"]) == [
        {
            "id": f"{label_span.trace_id}-{label_span.span_id}",
            "traceId": label_span.trace_id,
            "observationId": label_span.parent_span_id,
            "name": "feedback",
            "value": "off-topic",
            "dataType": "CATEGORICAL",
        },
        {
            "id": f"{thumbs_span.trace_id}-{thumbs_span.span_id}",
            "traceId": thumbs_span.trace_id,
            "observationId": thumbs_span.parent_span_id,
            "name": "feedback",
            "value": 1.0,
            "dataType": "NUMERIC",
            "metadata": {"label": "helpful"},
            "comment": "just right",
        },
    ]
    assert thumbs_token.startswith(f"{thumbs_span.trace_id}-{thumbs_span.parent_span_id}-")


def test_phoenix_feedback_is_a_span_annotation_of_the_turn(
    receiver: OTLPReceiver, app_base: str
) -> None:
    init(receiver, backend="phoenix", api_key="px-key")
    with httpx.Client(base_url=app_base) as alice:
        _, sent = judge(alice, score=0, comment="wrong")
    assert sent.status_code == 204
    (span,) = feedback_spans(receiver, 1)
    assert judgments_attempted(1)["native_feedback_sent"] == 1
    # Phoenix's bearer credentials, on the spans and on the annotation.
    assert {h["authorization"] for h in receiver.received.requests} == {"Bearer px-key"}
    (call,) = receiver.api_calls
    assert (call.path, call.headers["authorization"]) == ("/v1/span_annotations", "Bearer px-key")
    assert call.body == {
        "data": [
            {
                "span_id": span.parent_span_id,
                "name": "feedback",
                "annotator_kind": "HUMAN",
                "result": {"score": 0.0, "explanation": "wrong"},
                "identifier": span.span_id,
            }
        ]
    }


def test_other_backends_get_the_feedback_span_only(receiver: OTLPReceiver, app_base: str) -> None:
    init(receiver, backend="otlp")
    with httpx.Client(base_url=app_base) as alice:
        assert judge(alice, score=1)[1].status_code == 204
    assert len(feedback_spans(receiver, 1)) == 1
    assert receiver.api_calls == []
    assert neatlogs_web.stats()["export"]["native_feedback_sent"] == 0


def test_a_native_api_that_hangs_never_touches_the_app_nor_holds_up_spans(
    receiver: OTLPReceiver, app_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    init(receiver, "/api/public/otel", api_key=LANGFUSE_KEY, export_timeout_s=0.5)
    receiver.api_delay_s = 5.0  # the scores API takes requests and never answers
    with (
        caplog.at_level(logging.WARNING, logger="neatlogs_web"),
        httpx.Client(base_url=app_base) as alice,
    ):
        started = time.monotonic()
        assert judge(alice, score=1)[1].status_code == 204
        answered_s = time.monotonic() - started
        # The spans are counted as exported before the judgment is sent: flush waits
        # for them, not for an API that hangs.
        assert neatlogs_web.flush(3)
        flushed_s = time.monotonic() - started
        assert judgments_attempted(1)["native_feedback_failed"] == 1  # cut off at 0.5 s
        # For the next minute the API rests: judgments are counted as failed at once.
        assert judge(alice, score=0)[1].status_code == 204
        assert neatlogs_web.flush(3)
        export = judgments_attempted(2)
    assert answered_s < 0.5 and flushed_s < 0.5, (answered_s, flushed_s)
    assert (export["native_feedback_sent"], export["native_feedback_failed"]) == (0, 2)
    assert export["spans_failed"] == 0
    assert len(receiver.api_calls) == 1  # one timeout, not one per judgment
    warnings = [r.getMessage() for r in caplog.records if "feedback judgments" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"{receiver.url}/api/public/scores (Langfuse scores)" in warnings[0]
    assert "no answer" in warnings[0]


def test_langfuse_keys_come_from_its_own_variables(
    receiver: OTLPReceiver, app_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEATLOGS_API_KEY", raising=False)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-env")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-env")
    # The host alone: Langfuse's OTLP path is added.
    init(receiver, backend="langfuse")
    with httpx.Client(base_url=app_base) as alice:
        assert judge(alice, score=1)[1].status_code == 204
    feedback_spans(receiver, 1)
    assert judgments_attempted(1)["native_feedback_sent"] == 1
    assert set(receiver.received.paths) == {"/api/public/otel/v1/traces"}
    (call,) = receiver.api_calls
    assert call.headers["authorization"] == basic("pk-lf-env:sk-lf-env")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "zipkin"}, "backend must be 'neatlogs', 'otlp', 'phoenix' or 'langfuse'"),
        ({"backend": "langfuse", "api_key": "sk-lf-only"}, 'api_key is "public_key:secret_key"'),
    ],
)
def test_a_wrong_backend_setting_stops_the_app_at_startup(
    fresh_global_provider: None, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        neatlogs_web.init(endpoint="http://127.0.0.1:9", flush_on_sigterm=False, **options)
    assert neatlogs_web.stats()["export"] == {}
