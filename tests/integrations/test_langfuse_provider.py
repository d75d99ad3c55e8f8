"""The Langfuse SDK's own provider, exporting to a fake Langfuse on 127.0.0.1.

The app constructs ``Langfuse(...)`` before ``neatlogs_web.init()``, as a
Langfuse user's app does: Langfuse makes its provider global, ``init()``
joins it, and every span that reaches Langfuse's OTLP endpoint (ours,
FastAPI's, another instrumentation's) carries the session; one turn is one
trace. Spans are decoded from what Langfuse's exporter really sent.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langfuse import Langfuse
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider

import neatlogs_web
from neatlogs_web.asgi import NeatlogsSessionMiddleware
from neatlogs_web.integrations.langfuse import should_export_span
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.pipeline import reset_global_tracer_provider
from tests.servers import run_uvicorn
from tests.tokens import session_of

LANGFUSE_PATH = "/api/public/otel/v1/traces"
PROTO_KIND_SERVER = 2
TURNS = ["hello", "what is a session?", "thanks"]


@pytest.fixture
def fake_langfuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPReceiver]:
    """Langfuse's settings from the environment, its host a receiver on 127.0.0.1."""
    with OTLPReceiver() as receiver:
        monkeypatch.delenv("LANGFUSE_BASE_URL", raising=False)
        monkeypatch.setenv("LANGFUSE_HOST", receiver.url)
        # One client per test: Langfuse keeps one per public key for the process.
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", f"pk-lf-{uuid.uuid4().hex}")
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-test")
        monkeypatch.setenv("LANGFUSE_MEDIA_UPLOAD_ENABLED", "false")
        monkeypatch.setenv("LANGFUSE_FLUSH_INTERVAL", "0.05")
        neatlogs_web.shutdown()
        reset_global_tracer_provider()
        try:
            yield receiver
        finally:
            neatlogs_web.shutdown()
            reset_global_tracer_provider()


def chat_app() -> FastAPI:
    app = FastAPI()  # its own telemetry on, through the global provider
    app.add_middleware(NeatlogsSessionMiddleware, secret_key="k")
    retrieval = otel_trace.get_tracer("acme.retrieval")

    @app.post("/chat")
    async def chat(message: dict[str, str]) -> dict[str, str]:
        with neatlogs_web.trace("turn", input=message["text"]):
            with retrieval.start_as_current_span("search documents"):
                pass
            with neatlogs_web.trace("llm", kind="llm"):
                neatlogs_web.set_usage(prompt_tokens=5, completion_tokens=7, model="m")
            reply = f"echo: {message['text']}"
            neatlogs_web.set_output(reply)
            return {"answer": reply}

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"session_id": neatlogs_web.current_session_id()}

    return app


def start(**langfuse_options: Any) -> tuple[Langfuse, TracerProvider]:
    client = Langfuse(**langfuse_options)
    provider = otel_trace.get_tracer_provider()
    # Langfuse made its provider the global one.
    assert isinstance(provider, TracerProvider)
    return client, provider


def converse(client: Langfuse, receiver: OTLPReceiver, done: Any) -> tuple[str, list[ReceivedSpan]]:
    with run_uvicorn(chat_app()) as base, httpx.Client(base_url=base) as http:
        first = http.post("/chat", json={"text": TURNS[0]})
        session_id = session_of(first.headers["x-neatlogs-session-id"])
        for text in TURNS[1:]:
            http.post("/chat", json={"text": text}).raise_for_status()
        assert http.get("/whoami").json()["session_id"] == session_id
    client.flush()
    spans = receiver.wait_for(done)
    client.shutdown()
    # Everything went to Langfuse's OTLP endpoint, with its credentials.
    assert set(receiver.received.paths) == {LANGFUSE_PATH}
    for headers in receiver.received.requests:
        user = base64.b64decode(headers["authorization"].removeprefix("Basic ")).decode()
        assert user.endswith(":sk-lf-test")
    return session_id, spans


@pytest.mark.parametrize(
    ("session_keys", "key"), [("default", "session.id"), ("langfuse", "langfuse.session.id")]
)
def test_every_span_langfuse_gets_carries_the_session_and_a_turn_is_one_trace(
    fake_langfuse: OTLPReceiver, session_keys: str, key: str
) -> None:
    client, langfuse_provider = start(should_export_span=should_export_span)
    assert neatlogs_web.init(session_keys=session_keys) is langfuse_provider

    def done(spans: list[ReceivedSpan]) -> bool:
        requests = [s for s in spans if s.kind == PROTO_KIND_SERVER and s.name == "POST /chat"]
        return len(requests) >= len(TURNS)

    session_id, spans = converse(client, fake_langfuse, done)

    turns = [s for s in spans if s.name == "turn" and s.scope == "neatlogs_web"]
    assert len(turns) == len(TURNS)
    turn_traces = {t.trace_id for t in turns}
    # One turn, one trace; nothing else reached Langfuse (no request without a turn).
    assert len(turn_traces) == len(TURNS)
    assert {s.trace_id for s in spans} == turn_traces
    for span in spans:
        assert span.attributes[key] == session_id, (span.scope, span.name)
    scopes = {s.scope for s in spans}
    assert {"neatlogs_web", "fastapi", "acme.retrieval"} <= scopes
    # FastAPI's inner request spans stay out: a turnless request's would be a trace.
    assert [s.name for s in spans if s.scope == "fastapi" and s.parent_span_id] == []
    for turn in turns:
        (root,) = [s for s in spans if s.trace_id == turn.trace_id and s.parent_span_id == ""]
        # FastAPI's request span carries the turn: its input and output.
        assert (root.scope, root.kind, root.name) == ("fastapi", PROTO_KIND_SERVER, "POST /chat")
        assert root.attributes["input.value"] == turn.attributes["input.value"]
        assert root.attributes["output.value"] == f"echo: {turn.attributes['input.value']}"
        (search,) = [
            s for s in spans if s.trace_id == turn.trace_id and s.scope == "acme.retrieval"
        ]
        assert search.parent_span_id == turn.span_id
    assert sorted(t.attributes["input.value"] for t in turns) == sorted(TURNS)


def test_with_langfuses_default_filter_only_llm_spans_arrive_each_in_its_turns_trace(
    fake_langfuse: OTLPReceiver,
) -> None:
    client, langfuse_provider = start()
    assert neatlogs_web.init() is langfuse_provider

    def done(spans: list[ReceivedSpan]) -> bool:
        return sum(s.name == "llm" for s in spans) >= len(TURNS)

    session_id, spans = converse(client, fake_langfuse, done)

    # Langfuse keeps only spans with gen_ai.* attributes or from LLM instrumentations:
    # the LLM calls, each with the session, one trace per turn, and not the turn itself.
    assert {s.name for s in spans} == {"llm"}
    assert len(spans) == len(TURNS)
    assert len({s.trace_id for s in spans}) == len(TURNS)
    for span in spans:
        assert span.attributes["session.id"] == session_id
        assert span.attributes["gen_ai.usage.input_tokens"] == 5
