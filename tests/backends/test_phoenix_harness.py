"""The Phoenix harness proven on hand-made spans, before it judges our SDK.

Spans come from the plain OpenTelemetry SDK (a private TracerProvider, the
OTLP/HTTP exporter, Phoenix's ``/v1/traces``) with OpenInference attributes
set by hand, so a failure here is the harness's or Phoenix's, never
neatlogs_web's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from tests.backends.phoenix_client import PhoenixClient, Session, wait_for
from tests.backends.phoenix_server import PhoenixServer

pytestmark = pytest.mark.backends

TURNS = 3


@dataclass(frozen=True)
class Conversation:
    session_id: str
    user_id: str
    inputs: list[str]
    outputs: list[str]
    prompt_tokens: list[int]
    completion_tokens: list[int]


def conversation(user: str) -> Conversation:
    return Conversation(
        session_id=f"sess-{user}-{uuid.uuid4().hex[:12]}",
        user_id=f"user-{user}",
        inputs=[f"{user} asks question {turn}" for turn in range(1, TURNS + 1)],
        outputs=[f"answer {turn} for {user}" for turn in range(1, TURNS + 1)],
        prompt_tokens=[10 * turn + len(user) for turn in range(1, TURNS + 1)],
        completion_tokens=[5 * turn for turn in range(1, TURNS + 1)],
    )


def send_turns(tracer: Tracer, convo: Conversation) -> None:
    """Each turn: a CHAIN root with the turn's I/O, session and user; an LLM child."""
    for turn in range(TURNS):
        with tracer.start_as_current_span("turn") as root:
            root.set_attribute("openinference.span.kind", "CHAIN")
            root.set_attribute("session.id", convo.session_id)
            root.set_attribute("user.id", convo.user_id)
            root.set_attribute("input.value", convo.inputs[turn])
            root.set_attribute("input.mime_type", "text/plain")
            with tracer.start_as_current_span("llm") as llm:
                llm.set_attribute("openinference.span.kind", "LLM")
                llm.set_attribute("session.id", convo.session_id)
                llm.set_attribute("llm.model_name", "fake-model")
                llm.set_attribute("llm.token_count.prompt", convo.prompt_tokens[turn])
                llm.set_attribute("llm.token_count.completion", convo.completion_tokens[turn])
                llm.set_attribute(
                    "llm.token_count.total",
                    convo.prompt_tokens[turn] + convo.completion_tokens[turn],
                )
            root.set_attribute("output.value", convo.outputs[turn])
            root.set_attribute("output.mime_type", "text/plain")


def export_conversations(server: PhoenixServer, project: str, convos: list[Conversation]) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "harness", "openinference.project.name": project})
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=server.otlp_traces_url))
    )
    tracer = provider.get_tracer("tests.backends.harness")
    try:
        for convo in convos:
            send_turns(tracer, convo)
        assert provider.force_flush(10_000), "spans did not reach Phoenix"
    finally:
        provider.shutdown()


def settled_sessions(phoenix: PhoenixClient, project: str, sessions: int) -> list[Session]:
    return wait_for(
        lambda: phoenix.sessions(project),
        lambda found: (
            len(found) >= sessions
            and all(s.num_traces >= TURNS and s.last_output is not None for s in found)
        ),
    )


def test_phoenix_shows_hand_made_sessions_as_conversations(
    phoenix_server: PhoenixServer, phoenix: PhoenixClient, project_name: str
) -> None:
    convos = [conversation("alice"), conversation("bob")]
    export_conversations(phoenix_server, project_name, convos)

    sessions = settled_sessions(phoenix, project_name, len(convos))

    assert project_name in phoenix.project_names()
    by_id = {s.session_id: s for s in sessions}
    assert set(by_id) == {c.session_id for c in convos}
    for convo in convos:
        session = by_id[convo.session_id]
        assert session.num_traces == TURNS
        assert len(session.traces) == TURNS
        assert session.root_span_names == ["turn"] * TURNS
        assert session.inputs == convo.inputs
        assert session.outputs == convo.outputs
        assert session.first_input == convo.inputs[0]
        assert session.last_output == convo.outputs[-1]
        assert session.user_id == convo.user_id
        assert session.tokens.prompt == sum(convo.prompt_tokens)
        assert session.tokens.completion == sum(convo.completion_tokens)
        assert session.tokens.total == sum(convo.prompt_tokens) + sum(convo.completion_tokens)
        assert all(trace.num_spans == 2 for trace in session.traces)


def test_spans_come_back_with_their_attributes(
    phoenix_server: PhoenixServer, phoenix: PhoenixClient, project_name: str
) -> None:
    convo = conversation("carol")
    export_conversations(phoenix_server, project_name, [convo])

    spans = wait_for(lambda: phoenix.spans(project_name), lambda s: len(s) >= 2 * TURNS)

    assert len(spans) == 2 * TURNS
    assert {span.attribute("session.id") for span in spans} == {convo.session_id}
    roots = [span for span in spans if span.parent_id is None]
    assert [root.name for root in roots] == ["turn"] * TURNS
    assert {root.span_kind for root in roots} == {"CHAIN"}
    assert [root.attribute("input.value") for root in roots] == convo.inputs
    llms = [span for span in spans if span.span_kind == "LLM"]
    assert [llm.attribute("llm.token_count.prompt") for llm in llms] == convo.prompt_tokens


def test_phoenix_routes_by_the_project_resource_attribute_and_knows_no_other(
    phoenix_server: PhoenixServer, phoenix: PhoenixClient, project_name: str
) -> None:
    convo = conversation("dave")
    export_conversations(phoenix_server, project_name, [convo])
    settled_sessions(phoenix, project_name, 1)

    assert phoenix.sessions(f"{project_name}-missing") == []
    assert phoenix.project(f"{project_name}-missing") is None
    default_sessions = {s.session_id for s in phoenix.sessions("default")}
    assert convo.session_id not in default_sessions
