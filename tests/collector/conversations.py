"""Chat sessions as a traced web app exports them, for the page tests and screenshots.

Each user turn is what the SDK sends with FastAPI's own telemetry on: the framework's
request trace (`POST /chat/{conversation_id}`, scope `fastapi`, kind SERVER), the turn's
own trace linking to it, with retrieval, an LLM call and a tool under it, and sometimes
a background trace that links to the same request. Turns carry their input and output
in one of the conventions the collector reads: OpenInference, the GenAI conventions or
the neatlogs SDK's own attribute names. The middleware's felt-latency figures ride on
the turn's root span and the request's, and a person's judgments of a turn come as
`feedback` spans in the turn's trace, each in an export of its own, minutes later.
Sessions of a request alone (`GET /whoami`, a health check) are there too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from neatlogs_web._tracing.feedback import (
    FEEDBACK_COMMENT_KEY,
    FEEDBACK_LABEL_KEY,
    FEEDBACK_SCORE_KEY,
    FEEDBACK_SPAN_NAME,
)
from neatlogs_web._tracing.felt_latency import (
    COMPLETE_KEY,
    DURATION_KEY,
    TIME_TO_FIRST_CHUNK_KEY,
    TIME_TO_START_KEY,
)
from tests.collector import otlp_data as otlp

Send = Callable[[bytes], None]
RESOURCE = {"service.name": "support-api", "neatlogs.workflow_name": "support-bot"}


@dataclass
class Judged:
    """A person's judgment of a turn, `after_s` seconds after it started."""

    after_s: float
    score: float | None = None
    label: str | None = None
    comment: str | None = None


@dataclass
class Turn:
    """One user turn to export."""

    at_s: float
    input: str
    output: str
    style: str = "openinference"  # or "genai", "neatlogs"
    error: str | None = None
    background: bool = False
    request: bool = True
    #: Seconds to the first words, and to the end of the answer (None: the person left).
    felt: tuple[float, float | None] | None = None
    judgments: tuple[Judged, ...] = ()


def send_turn(send: Send, session: str, user: str | None, turn: Turn, base_ns: int) -> str:
    """Export one turn; return its trace id (hex)."""
    start = turn.at_s * 1000
    request_trace, request_span = otlp.new_trace_id(), otlp.new_span_id()
    common: dict[str, Any] = {"session.id": session, "neatlogs.session.id": session}
    if user is not None:
        common["neatlogs.end_user.id"] = user
    felt = felt_attributes(*turn.felt) if turn.felt is not None else {}
    if turn.request:
        send(
            otlp.protobuf(
                otlp.span(
                    "POST /chat/{conversation_id}",
                    trace_id=request_trace,
                    span_id=request_span,
                    start_ms=start,
                    duration_ms=2600,
                    base_ns=base_ns,
                    kind=Span.SPAN_KIND_SERVER,
                    attributes={
                        **common,
                        "http.request.method": "POST",
                        "http.route": "/chat/{conversation_id}",
                        "http.response.status_code": 200,
                        **felt,
                    },
                ),
                resource=RESOURCE,
                scope="fastapi",
            )
        )
    trace_id, root, llm = otlp.new_trace_id(), otlp.new_span_id(), otlp.new_span_id()

    def child(name: str, offset: float, duration: float, **kw: Any) -> Span:
        return otlp.span(
            name,
            trace_id=trace_id,
            parent=kw.pop("parent", root),
            start_ms=start + 10 + offset,
            duration_ms=duration,
            base_ns=base_ns,
            **kw,
        )

    root_attributes = {**common, **_root_io(turn), **felt}
    root_span = otlp.span(
        "turn",
        trace_id=trace_id,
        span_id=root,
        start_ms=start + 10,
        duration_ms=2400,
        base_ns=base_ns,
        attributes=root_attributes,
        error="tool failed" if turn.error else None,
    )
    if turn.request:
        root_span.links.add(trace_id=request_trace, span_id=request_span)
    spans = [
        root_span,
        child(
            "retrieve documents",
            20,
            180,
            attributes={
                **common,
                "openinference.span.kind": "RETRIEVER",
                "input.value": turn.input,
            },
        ),
        child("llm.chat", 220, 1500, span_id=llm, attributes={**common, **_llm(turn)}),
        child(
            "tool: search_kb",
            1750,
            600,
            attributes={**common, "openinference.span.kind": "TOOL", "tool.name": "search_kb"},
            error=turn.error,
        ),
    ]
    send(otlp.protobuf(*spans, resource=RESOURCE, scope="neatlogs_web"))
    if turn.background:
        summary = otlp.span(
            "summarise",
            start_ms=start + 2700,
            duration_ms=300,
            base_ns=base_ns,
            attributes={**common},
        )
        summary.links.add(trace_id=request_trace, span_id=request_span)
        send(otlp.protobuf(summary, resource=RESOURCE, scope="neatlogs_web"))
    for judged in turn.judgments:
        judgment = feedback_span(
            judged, trace_id, root, turn_start_ms=start, base_ns=base_ns, attributes=common
        )
        send(otlp.protobuf(judgment, resource=RESOURCE, scope="neatlogs_web"))
    return trace_id.hex()


def felt_attributes(
    first_words: float, answered: float | None, *, start: float = 0.012
) -> dict[str, Any]:
    """The felt-latency figures the middleware puts on a turn and its request, in
    seconds; an answer that never `answered` was cut short."""
    figures: dict[str, Any] = {
        TIME_TO_START_KEY: start,
        TIME_TO_FIRST_CHUNK_KEY: first_words,
        COMPLETE_KEY: answered is not None,
    }
    if answered is not None:
        figures[DURATION_KEY] = answered
    return figures


def feedback_span(
    judged: Judged,
    trace_id: bytes,
    turn_span_id: bytes,
    *,
    turn_start_ms: float,
    base_ns: int = otlp.BASE_NS,
    attributes: dict[str, Any],
) -> Span:
    """The `feedback` span `record_feedback()` records for a judgment of a turn, with
    these `attributes` too (its session)."""
    judgment = {
        FEEDBACK_SCORE_KEY: judged.score,
        FEEDBACK_LABEL_KEY: judged.label,
        FEEDBACK_COMMENT_KEY: judged.comment,
    }
    attributes = {**attributes, **{k: v for k, v in judgment.items() if v is not None}}
    return otlp.span(
        FEEDBACK_SPAN_NAME,
        trace_id=trace_id,
        parent=turn_span_id,
        start_ms=turn_start_ms + judged.after_s * 1000,
        duration_ms=0,
        base_ns=base_ns,
        attributes=attributes,
    )


def _root_io(turn: Turn) -> dict[str, Any]:
    if turn.style == "openinference":
        return {
            "openinference.span.kind": "CHAIN",
            "input.value": turn.input,
            "output.value": turn.output,
        }
    if turn.style == "neatlogs":
        return {
            "neatlogs.span.kind": "workflow",
            "neatlogs.input.value": turn.input,
            "neatlogs.output.value": turn.output,
        }
    return {}  # GenAI: the turn's text is on its LLM call only


def _llm(turn: Turn) -> dict[str, Any]:
    system = "You are a helpful support assistant."
    if turn.style == "genai":
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 640,
            "gen_ai.usage.output_tokens": 96,
            "gen_ai.input.messages": json.dumps(
                [
                    {"role": "system", "parts": [{"type": "text", "content": system}]},
                    {"role": "user", "parts": [{"type": "text", "content": turn.input}]},
                ]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": turn.output}]}]
            ),
        }
    if turn.style == "neatlogs":
        return {
            "neatlogs.span.kind": "llm",
            "neatlogs.llm.model_name": "gpt-4o-mini",
            "neatlogs.llm.input_messages.0.role": "system",
            "neatlogs.llm.input_messages.0.content": system,
            "neatlogs.llm.input_messages.1.role": "user",
            "neatlogs.llm.input_messages.1.content": turn.input,
            "neatlogs.llm.output_messages.0.role": "assistant",
            "neatlogs.llm.output_messages.0.content": turn.output,
            "neatlogs.llm.token_count.prompt": 512,
            "neatlogs.llm.token_count.completion": 88,
            "neatlogs.llm.token_count.total": 600,
        }
    return {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": system,
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": turn.input,
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": turn.output,
        "llm.token_count.prompt": 812,
        "llm.token_count.completion": 164,
        "llm.token_count.total": 976,
    }


def send_request_only(send: Send, session: str, name: str, at_s: float, base_ns: int) -> None:
    """A session holding one request and no turn: a page load, a health check."""
    send(
        otlp.protobuf(
            otlp.span(
                name,
                start_ms=at_s * 1000,
                duration_ms=3,
                base_ns=base_ns,
                kind=Span.SPAN_KIND_SERVER,
                attributes={
                    "session.id": session,
                    "http.request.method": name.split()[0],
                    "http.response.status_code": 200,
                },
            ),
            resource=RESOURCE,
            scope="opentelemetry.instrumentation.asgi",
        )
    )


ALICE_TURNS = [
    Turn(
        0,
        "How do I reset my password?",
        "Open Settings > Security and choose “Reset password”; a link is emailed to you.",
        background=True,
        felt=(0.9, 2.4),
        judgments=(Judged(40, score=1),),
    ),
    Turn(
        21,
        "The email never arrived.",
        "I re-sent it to a…@example.com. Check the spam folder; it comes from no-reply.",
        style="genai",
        felt=(1.8, 2.5),
    ),
    # After a 5 min 39 s pause.
    Turn(
        362.6,
        "Can you just unlock my account?",
        "I can't unlock accounts myself, so I opened ticket #4812 for the support team.",
        style="neatlogs",
        error="upstream 503",
        felt=(2.1, None),  # the answer never ended: alice left
        judgments=(
            Judged(30, score=0, label="unhelpful", comment="I am still locked out"),
            Judged(50, score=0, comment="asked for a human twice"),
        ),
    ),
]


def seed(send: Send, now_ns: int | None = None) -> int:
    """Two conversations, two request-only sessions and an old one; return the base time."""
    base = (now_ns or time.time_ns()) - 8 * 60 * 1_000_000_000
    for turn in ALICE_TURNS:
        send_turn(send, "conv-7f3a", "alice@example.com", turn, base)
    send_turn(
        send,
        "conv-91bc",
        "bob@example.com",
        Turn(
            200,
            "What are your opening hours?",
            "We answer chats 8:00-20:00 CET, on weekdays.",
            felt=(3.2, 3.9),  # the slowest first words
            judgments=(Judged(20, score=1, label="clear"),),
        ),
        base,
    )
    send_request_only(send, "sess-whoami", "GET /whoami", 230, base)
    send_request_only(send, "sess-health", "GET /healthz", 240, base)
    two_days_ago = base - 2 * 86_400 * 1_000_000_000
    send_turn(
        send,
        "conv-old",
        "carol@example.com",
        Turn(0, "Is the service down?", "Everything is up and running."),
        two_days_ago,
    )
    return base
