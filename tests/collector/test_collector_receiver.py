"""The OTLP/HTTP receiver answers as the OTLP spec says, and bad input harms nothing."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import httpx
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.testclient import TestClient

from neatlogs_web.collector import Store, create_app
from tests.collector import otlp_data as otlp
from tests.collector.live import LiveCollector

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def session_ids(client: TestClient) -> list[str]:
    return [s["session_id"] for s in client.get("/api/sessions").json()["sessions"]]


def test_protobuf_export_is_stored_and_answered_in_protobuf(client: TestClient) -> None:
    body = otlp.protobuf(otlp.span("turn", attributes={"session.id": "pb"}))

    response = client.post("/v1/traces", content=body, headers=PROTOBUF)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    assert session_ids(client) == ["pb"]


def test_json_export_with_hex_ids_and_string_ints_is_stored(client: TestClient) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    root = otlp.json_span("root", trace_id, "eee19b7ec3c1b174", session="js")
    child = otlp.json_span("child", trace_id, "eee19b7ec3c1b175", parent="eee19b7ec3c1b174")

    response = client.post("/v1/traces", content=otlp.otlp_json([root, child]), headers=JSON)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    trace = client.get(f"/api/traces/{trace_id}").json()
    assert trace["session_id"] == "js"
    assert trace["workflow"] == "json-sender"
    spans = {s["name"]: s for s in trace["spans"]}
    assert spans["child"]["parent_span_id"] == "eee19b7ec3c1b174"
    assert spans["root"]["attributes"] == {"tokens": 42, "session.id": "js"}
    assert spans["root"]["kind"] == "SERVER"
    assert spans["root"]["status"] == {"code": "ERROR", "message": "boom"}
    assert spans["root"]["events"][0]["name"] == "thinking"
    assert spans["root"]["events"][0]["attributes"] == {"step": 1}


def test_gzip_and_deflate_bodies_are_accepted(client: TestClient) -> None:
    gz = gzip.compress(otlp.protobuf(otlp.span("a", attributes={"session.id": "gz"})))
    df = zlib.compress(otlp.protobuf(otlp.span("b", attributes={"session.id": "df"})))

    for body, encoding in ((gz, "gzip"), (df, "deflate")):
        headers = {**PROTOBUF, "Content-Encoding": encoding}
        assert client.post("/v1/traces", content=body, headers=headers).status_code == 200

    assert sorted(session_ids(client)) == ["df", "gz"]


def test_spans_with_invalid_ids_are_rejected_as_partial_success(client: TestClient) -> None:
    good = otlp.span("good", attributes={"session.id": "partial"})
    zero_trace = otlp.span("bad", trace_id=bytes(16))
    short_span = otlp.span("bad", span_id=b"\x01\x02")

    response = client.post(
        "/v1/traces", content=otlp.protobuf(good, zero_trace, short_span), headers=PROTOBUF
    )

    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    assert "invalid" in answer.partial_success.error_message
    assert session_ids(client) == ["partial"]


def test_partial_success_in_json_uses_the_json_mapping(client: TestClient) -> None:
    bad = otlp.json_span("bad", "00" * 16, "eee19b7ec3c1b174")

    response = client.post("/v1/traces", content=otlp.otlp_json([bad]), headers=JSON)

    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"


def test_malformed_protobuf_is_400_with_a_status_message(client: TestClient) -> None:
    response = client.post("/v1/traces", content=b"\xff\xff\xff\xff", headers=PROTOBUF)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    assert "protobuf" in Status.FromString(response.content).message


def test_malformed_json_is_400_with_an_error(client: TestClient) -> None:
    for body in (b"{not json", b"[1, 2]", b'{"resourceSpans": 7}', "é".encode("latin-1")):
        response = client.post("/v1/traces", content=body, headers=JSON)
        assert response.status_code == 400, body
        assert response.json()["error"]


def test_non_hex_id_in_json_is_400(client: TestClient) -> None:
    bad = otlp.json_span("bad", "not-hex", "eee19b7ec3c1b174")

    response = client.post("/v1/traces", content=otlp.otlp_json([bad]), headers=JSON)

    assert response.status_code == 400
    assert "traceId" in response.json()["error"]


def test_corrupt_gzip_is_400(client: TestClient) -> None:
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    truncated = gzip.compress(otlp.protobuf(otlp.span("x")))[:-12]

    for body in (b"not gzip at all", truncated):
        response = client.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == 400


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    # The client fixture's limit is 64 KiB.
    response = client.post("/v1/traces", content=b"\0" * (65 * 1024), headers=PROTOBUF)

    assert response.status_code == 413
    assert "limit" in Status.FromString(response.content).message


def test_small_gzip_body_that_expands_over_the_limit_is_413(client: TestClient) -> None:
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))
    assert len(bomb) < 64 * 1024

    response = client.post("/v1/traces", content=bomb, headers={**JSON, "Content-Encoding": "gzip"})

    assert response.status_code == 413
    assert "decompressed" in response.json()["error"]


def test_streamed_body_without_length_is_cut_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"\0" * 1024

    response = client.post("/v1/traces", content=chunks(), headers=PROTOBUF)

    assert response.status_code == 413


def test_unknown_content_type_is_415(client: TestClient) -> None:
    for content_type in ("text/plain", "application/grpc", ""):
        response = client.post("/v1/traces", content=b"x", headers={"Content-Type": content_type})
        assert response.status_code == 415
        assert "application/x-protobuf" in response.json()["error"]


def test_unknown_content_encoding_is_415(client: TestClient) -> None:
    response = client.post("/v1/traces", content=b"x", headers={**JSON, "Content-Encoding": "br"})

    assert response.status_code == 415


def test_get_on_the_receiver_is_405_json(client: TestClient) -> None:
    response = client.get("/v1/traces")

    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}


def test_api_key_is_required_when_set(
    live_collector_factory: Callable[..., LiveCollector],
) -> None:
    live = live_collector_factory(api_key="s3cret")
    body = otlp.protobuf(otlp.span("keyed", attributes={"session.id": "keyed"}))
    url = live.url + "/v1/traces"

    missing = httpx.post(url, content=body, headers=PROTOBUF)
    wrong = httpx.post(url, content=body, headers={**PROTOBUF, "x-api-key": "nope"})
    right = httpx.post(url, content=body, headers={**PROTOBUF, "x-api-key": "s3cret"})

    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert "x-api-key" in Status.FromString(missing.content).message
    assert [s["session_id"] for s in live.get("/api/sessions").json()["sessions"]] == ["keyed"]


def test_bad_input_neither_stops_the_receiver_nor_loses_stored_spans(
    collector: LiveCollector,
) -> None:
    url = collector.url + "/v1/traces"
    first = otlp.protobuf(otlp.span("before", attributes={"session.id": "kept"}))
    assert httpx.post(url, content=first, headers=PROTOBUF).status_code == 200

    bad_requests = [
        (b"\xff\xff", PROTOBUF),
        (b"{", JSON),
        (b"x", {"Content-Type": "text/plain"}),
        (b"\0" * (17 * 1024 * 1024), PROTOBUF),
        (b"garbage", {**PROTOBUF, "Content-Encoding": "gzip"}),
    ]
    for body, headers in bad_requests:
        assert httpx.post(url, content=body, headers=headers, timeout=30).status_code >= 400

    later = otlp.protobuf(otlp.span("after", attributes={"session.id": "kept"}))
    assert httpx.post(url, content=later, headers=PROTOBUF).status_code == 200
    session = collector.get("/api/sessions/kept").json()
    assert [t["name"] for t in session["traces"]] == ["before", "after"]


def test_a_retried_export_does_not_double_counts(client: TestClient) -> None:
    body = otlp.protobuf(otlp.span("once", attributes={"session.id": "retry"}))

    for _ in range(3):
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200

    session = client.get("/api/sessions/retry").json()
    assert (session["trace_count"], session["span_count"]) == (1, 1)


def test_timestamps_past_the_signed_range_are_stored_capped(client: TestClient) -> None:
    span = otlp.span("far future", attributes={"session.id": "future"})
    span.start_time_unix_nano = span.end_time_unix_nano = 2**64 - 1

    response = client.post("/v1/traces", content=otlp.protobuf(span), headers=PROTOBUF)

    assert response.status_code == 200
    assert client.get("/api/sessions/future").json()["last_seen"].startswith("2262-04-11")


def test_a_span_with_a_flood_of_tiny_events_is_413_before_it_is_stored(store: Store) -> None:
    """Empty events cost 2 bytes each on the wire and an object and a row each once
    decoded: the request's events, links and attributes are bounded too (20 a span
    on average: 2,000 for a collector that takes 100 spans a request)."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

    app = create_app(store, max_spans=100)
    client = TestClient(app, base_url="http://127.0.0.1:4318")
    flooded = otlp.span("flooded", attributes={"session.id": "flood"})
    flooded.events.extend(ProtoSpan.Event() for _ in range(30_000))
    body = gzip.compress(otlp.protobuf(flooded))
    response = client.post(
        "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "events, links and attributes" in Status.FromString(response.content).message
    assert client.get("/api/sessions").json()["sessions"] == []


def test_a_json_number_too_long_to_parse_is_400(client: TestClient) -> None:
    body = b'{"resourceSpans": [], "x": ' + b"1" * 5000 + b"}"
    response = client.post("/v1/traces", content=body, headers=JSON)
    assert response.status_code == 400
