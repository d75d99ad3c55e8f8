"""init() / trace() / session(): what arrives at a real OTLP receiver."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace as otel_trace

import neatlogs_web
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.pipeline import reset_global_tracer_provider, spans_after_flush


def by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {span.name: span for span in spans}


def test_auto_session_and_session_id_together_raise() -> None:
    with pytest.raises(ValueError, match="auto_session or session_id, not both"):
        neatlogs_web.init(auto_session=True, session_id="s-1", exporter="none")


def test_top_level_traces_are_new_roots_and_nested_are_children(tracing: OTLPReceiver) -> None:
    with neatlogs_web.trace("turn_1") as turn, neatlogs_web.trace("llm"):
        pass
    with neatlogs_web.trace("turn_2"):
        pass
    assert turn.get_span_context().is_valid
    assert neatlogs_web.flush()
    spans = by_name(tracing.wait_for(lambda s: len(s) >= 3))
    assert spans["turn_1"].parent_span_id == ""
    assert spans["turn_2"].parent_span_id == ""
    assert spans["llm"].parent_span_id == spans["turn_1"].span_id
    assert spans["llm"].trace_id == spans["turn_1"].trace_id
    assert spans["turn_1"].trace_id != spans["turn_2"].trace_id


def test_export_is_gzip_protobuf_to_v1_traces_with_api_key(receiver: OTLPReceiver) -> None:
    neatlogs_web.init("key-123", receiver.url, "wf", backend="otlp", flush_on_sigterm=False)
    with neatlogs_web.trace("turn"):
        pass
    assert neatlogs_web.flush()
    spans = receiver.wait_for(lambda s: len(s) >= 1)
    request = receiver.received.requests[0]
    assert receiver.received.paths[0] == "/v1/traces"
    assert request["x-api-key"] == "key-123"
    assert request["content-encoding"] == "gzip"
    assert request["content-type"] == "application/x-protobuf"
    assert spans[0].resource["service.name"] == "wf"
    assert spans[0].resource["neatlogs.workflow_name"] == "wf"


def test_env_fallbacks_for_api_key_and_endpoint(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEATLOGS_API_KEY", "env-key")
    monkeypatch.setenv("NEATLOGS_ENDPOINT", receiver.url + "/")
    neatlogs_web.init(backend="otlp", flush_on_sigterm=False)
    with neatlogs_web.trace("turn"):
        pass
    assert neatlogs_web.flush()
    receiver.wait_for(lambda s: len(s) >= 1)
    assert receiver.received.requests[0]["x-api-key"] == "env-key"
    assert receiver.spans[0].resource["service.name"] == "neatlogs-app"


def test_no_api_key_header_without_a_key(tracing: OTLPReceiver) -> None:
    with neatlogs_web.trace("turn"):
        pass
    neatlogs_web.flush()
    tracing.wait_for(lambda s: len(s) >= 1)
    assert "x-api-key" not in tracing.received.requests[0]


def test_session_block_stamps_every_span_including_other_tracers(
    tracing: OTLPReceiver,
) -> None:
    other = otel_trace.get_tracer("some.instrumentation")
    with neatlogs_web.session("conv-42"):
        assert neatlogs_web.current_session_id() == "conv-42"
        with neatlogs_web.trace("turn"), other.start_as_current_span("instrumented.call"):
            pass
    with neatlogs_web.trace("outside"):
        pass
    assert neatlogs_web.current_session_id() is None
    neatlogs_web.flush()
    spans = by_name(tracing.wait_for(lambda s: len(s) >= 3))
    for name in ("turn", "instrumented.call"):
        assert spans[name].attributes["session.id"] == "conv-42"
        assert spans[name].attributes["neatlogs.session.id"] == "conv-42"
    assert spans["instrumented.call"].scope == "some.instrumentation"
    assert "session.id" not in spans["outside"].attributes


def test_precedence_session_block_over_init_default(receiver: OTLPReceiver) -> None:
    reset_global_tracer_provider()
    neatlogs_web.init(endpoint=receiver.url, session_id="script-session", flush_on_sigterm=False)
    with neatlogs_web.trace("default"):
        pass
    with neatlogs_web.session("request-session"), neatlogs_web.trace("override"):
        pass
    neatlogs_web.flush()
    spans = by_name(receiver.wait_for(lambda s: len(s) >= 2))
    assert spans["default"].attributes["session.id"] == "script-session"
    assert spans["override"].attributes["session.id"] == "request-session"


def test_auto_session_generates_one_id_for_the_process(receiver: OTLPReceiver) -> None:
    neatlogs_web.init(endpoint=receiver.url, auto_session=True, flush_on_sigterm=False)
    auto = neatlogs_web.current_session_id()
    assert auto is not None and len(auto) >= 20
    for name in ("a", "b"):
        with neatlogs_web.trace(name):
            pass
    neatlogs_web.flush()
    spans = receiver.wait_for(lambda s: len(s) >= 2)
    assert {span.attributes["session.id"] for span in spans} == {auto}


def test_trace_decorates_sync_and_async_functions(tracing: OTLPReceiver) -> None:
    @neatlogs_web.trace("sync_step", kind="tool", step=1)
    def sync_step(x: int) -> int:
        return x + 1

    @neatlogs_web.trace("async_step", input="three")
    async def async_step(x: int) -> int:
        with neatlogs_web.trace("inner"):
            await asyncio.sleep(0)
        return x * 2

    assert sync_step(1) == 2
    assert asyncio.run(async_step(3)) == 6
    assert sync_step.__name__ == "sync_step"
    neatlogs_web.flush()
    spans = by_name(tracing.wait_for(lambda s: len(s) >= 3))
    assert spans["sync_step"].attributes["openinference.span.kind"] == "TOOL"
    assert spans["sync_step"].attributes["step"] == 1
    assert spans["inner"].parent_span_id == spans["async_step"].span_id
    assert spans["async_step"].attributes["input.value"] == "three"


def test_exception_is_recorded_and_reraised(tracing: OTLPReceiver) -> None:
    with pytest.raises(RuntimeError), neatlogs_web.trace("failing"):
        raise RuntimeError("boom")
    neatlogs_web.flush()
    span = tracing.wait_for(lambda s: len(s) >= 1)[0]
    assert span.status_code == 2  # STATUS_CODE_ERROR


def test_without_joining_a_top_level_trace_under_a_framework_span_is_a_linked_root(
    receiver: OTLPReceiver,
) -> None:
    reset_global_tracer_provider()
    neatlogs_web.init(endpoint=receiver.url, join_request_trace=False, flush_on_sigterm=False)
    tracing = receiver
    framework = otel_trace.get_tracer("fastapi")
    with framework.start_as_current_span("POST /chat") as server_span, neatlogs_web.trace("turn"):
        pass
    neatlogs_web.flush()
    spans = by_name(tracing.wait_for(lambda s: len(s) >= 2))
    turn = spans["turn"]
    assert turn.parent_span_id == ""
    assert turn.trace_id != spans["POST /chat"].trace_id
    context = server_span.get_span_context()
    assert turn.links == [(f"{context.trace_id:032x}", f"{context.span_id:016x}")]


def test_by_default_a_top_level_trace_joins_the_framework_span(tracing: OTLPReceiver) -> None:
    receiver = tracing
    framework = otel_trace.get_tracer("fastapi")
    with framework.start_as_current_span("POST /chat"), neatlogs_web.trace("turn"):
        pass
    neatlogs_web.flush()
    spans = by_name(receiver.wait_for(lambda s: len(s) >= 2))
    assert spans["turn"].parent_span_id == spans["POST /chat"].span_id


def test_neatlogs_backend_gets_markers_and_no_http_spans(receiver: OTLPReceiver) -> None:
    reset_global_tracer_provider()
    neatlogs_web.init("key", receiver.url, flush_on_sigterm=False)  # a key: neatlogs backend
    server = otel_trace.get_tracer("opentelemetry.instrumentation.asgi")
    with neatlogs_web.session("s-1"):
        with server.start_as_current_span(
            "GET /", kind=otel_trace.SpanKind.SERVER, attributes={"http.request.method": "GET"}
        ):
            pass
        with neatlogs_web.trace("turn"), neatlogs_web.trace("llm"):
            pass
    assert neatlogs_web.flush()
    spans = receiver.wait_for(lambda s: any(x.name == "neatlogs.trace.complete" for x in s))
    names = sorted(span.name for span in spans)
    assert names == ["llm", "neatlogs.trace.complete", "turn"]
    marker = by_name(spans)["neatlogs.trace.complete"]
    turn = by_name(spans)["turn"]
    assert marker.parent_span_id == turn.span_id and marker.trace_id == turn.trace_id
    assert marker.attributes["neatlogs.trace.complete"] is True
    assert marker.attributes["neatlogs.internal"] is True
    assert marker.attributes["session.id"] == "s-1"
    assert neatlogs_web.stats()["export"]["spans_filtered"] == 1


def test_plain_otlp_target_gets_every_span_and_no_marker(tracing: OTLPReceiver) -> None:
    server = otel_trace.get_tracer("opentelemetry.instrumentation.asgi")
    with (
        server.start_as_current_span(
            "GET /", kind=otel_trace.SpanKind.SERVER, attributes={"http.request.method": "GET"}
        ),
        neatlogs_web.trace("turn"),
    ):
        pass
    neatlogs_web.flush()
    spans = tracing.wait_for(lambda s: len(s) >= 2)
    assert sorted(span.name for span in spans) == ["GET /", "turn"]


def test_init_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        neatlogs_web.init(endpoint="localhost:4318")
    with pytest.raises(ValueError, match="unknown session_keys preset"):
        neatlogs_web.init(exporter="none", session_keys="nope")
    with pytest.raises(ValueError, match="exporter must be"):
        neatlogs_web.init(exporter="jaeger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="characters"):
        neatlogs_web.init(exporter="none", session_id="has space")


def test_second_init_with_other_options_asks_for_shutdown(tracing: OTLPReceiver) -> None:
    with pytest.raises(RuntimeError, match="shutdown"):
        neatlogs_web.init(exporter="console")
    # The first pipeline goes on exporting where it did.
    with neatlogs_web.session("after"), neatlogs_web.trace("turn"):
        pass
    (turn,) = spans_after_flush(tracing, 1)
    assert (turn.name, turn.attributes["session.id"]) == ("turn", "after")


def test_session_keys_preset_for_langfuse(receiver: OTLPReceiver) -> None:
    neatlogs_web.init(endpoint=receiver.url, session_keys="langfuse", flush_on_sigterm=False)
    with neatlogs_web.session("lf-1"), neatlogs_web.trace("turn"):
        pass
    neatlogs_web.flush()
    span = receiver.wait_for(lambda s: len(s) >= 1)[0]
    assert span.attributes["langfuse.session.id"] == "lf-1"
    assert "session.id" not in span.attributes


def test_session_rejects_invalid_ids() -> None:
    with pytest.raises(ValueError), neatlogs_web.session("a" * 129):
        pass
    with pytest.raises(ValueError), neatlogs_web.session("bad id"):
        pass
