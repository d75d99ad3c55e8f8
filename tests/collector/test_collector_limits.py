"""What a request may ask of the collector: only its own host names, and bounded work.

These run against a real uvicorn server on loopback: the `Host` header and the
request body reach the collector exactly as a browser or an exporter sends them.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.collector import otlp_data as otlp
from tests.collector.live import CollectorProcess, LiveCollector

PROTOBUF = {"Content-Type": "application/x-protobuf"}
MIB = 1024 * 1024


def span_body(session: str) -> bytes:
    return otlp.protobuf(otlp.span("turn", attributes={"session.id": session}))


def test_a_foreign_host_is_refused_everywhere_and_stores_nothing(
    collector: LiveCollector,
) -> None:
    # What a page on evil.example sends once its name resolves to 127.0.0.1.
    for host in ("evil.example", f"evil.example:{collector.port}", "127.0.0.1.evil.example"):
        headers = {"Host": host}
        page = httpx.get(collector.url + "/", headers=headers)
        listing = httpx.get(collector.url + "/api/sessions", headers=headers)
        export = httpx.post(
            collector.url + "/v1/traces",
            content=span_body("rebound"),
            headers={**PROTOBUF, **headers},
        )
        assert (page.status_code, listing.status_code, export.status_code) == (403, 403, 403)
        assert "does not answer for Host" in listing.json()["error"]

    assert collector.get("/api/sessions").json()["sessions"] == []


def test_loopback_names_are_answered_with_or_without_the_port(collector: LiveCollector) -> None:
    port = collector.port
    hosts = ["127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", f"[::1]:{port}"]

    for host in hosts:
        response = httpx.get(collector.url + "/api/sessions", headers={"Host": host})
        assert response.status_code == 200, host


def test_the_configured_host_is_answered_and_no_other(
    live_collector_factory: Callable[..., LiveCollector],
) -> None:
    live = live_collector_factory(host="collector.lan")

    def status(host: str) -> int:
        return httpx.get(live.url + "/api/sessions", headers={"Host": host}).status_code

    assert status("collector.lan") == 200
    assert status(f"collector.lan:{live.port}") == 200
    assert status("other.lan") == 403


def test_a_gzip_body_inflating_past_the_limit_is_413_with_bounded_memory(
    live_collector_factory: Callable[..., LiveCollector],
) -> None:
    live = live_collector_factory(max_body_bytes=MIB)
    # 256 MiB of zeros in about 250 KiB: a quarter of the limit before inflating.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    bomb = b"".join(packer.compress(block) for _ in range(256)) + packer.flush()
    assert len(bomb) < MIB // 2

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(bomb), 16 * 1024):
            yield bomb[start : start + 16 * 1024]

    process = psutil.Process()
    before = process.memory_info().rss
    response = httpx.post(
        live.url + "/v1/traces",
        content=chunks(),
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
        timeout=30,
    )
    grown = process.memory_info().rss - before

    assert response.status_code == 413
    assert grown < 32 * MIB, f"RSS grew {grown / MIB:.0f} MiB"


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
def test_a_request_with_too_many_spans_is_413_before_they_are_built(
    collector: LiveCollector, fmt: str
) -> None:
    # The hostile export: 1.8 MiB of gzip holding 349,000 minimal spans once
    # took the collector from 117 to 609 MiB.
    count = 349_000 if fmt == "protobuf" else 120_000
    if fmt == "protobuf":
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        for index in range(1, count + 1):
            spans.add(trace_id=index.to_bytes(16, "big"), span_id=index.to_bytes(8, "big"))
        raw = request.SerializeToString()
        del request, spans
        content_type = "application/x-protobuf"
    else:
        raw = otlp.otlp_json(
            [
                {"traceId": f"{index:032x}", "spanId": f"{index:016x}", "name": "x"}
                for index in range(1, count + 1)
            ]
        )
        content_type = "application/json"
    body = gzip.compress(raw)
    del raw

    process = psutil.Process()
    before = process.memory_info().rss
    response = httpx.post(
        collector.url + "/v1/traces",
        content=body,
        headers={"Content-Type": content_type, "Content-Encoding": "gzip"},
        timeout=60,
    )
    grown = process.memory_info().rss - before

    assert response.status_code == 413
    assert grown < 160 * MIB, f"RSS grew {grown / MIB:.0f} MiB"
    assert collector.get("/api/traces").json()["traces"] == []
    # The collector still takes a normal export afterwards.
    ok = httpx.post(collector.url + "/v1/traces", content=span_body("after"), headers=PROTOBUF)
    assert ok.status_code == 200
    assert collector.get("/api/sessions/after").status_code == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("q", "a" * 50_000),
        ("q", "%_" * 12_500),  # LIKE wildcards, each escaped to two bytes of the pattern
        ("workflow", "w" * 50_000),
        ("user", "u" * 50_000),
    ],
)
def test_a_search_or_filter_longer_than_1000_characters_is_400_naming_its_limit(
    collector: LiveCollector, name: str, value: str
) -> None:
    # SQLite refuses a LIKE pattern over 50,000 bytes; that used to be a 500.
    sent = httpx.post(collector.url + "/v1/traces", content=span_body("s"), headers=PROTOBUF)
    assert sent.status_code == 200

    response = collector.get("/api/sessions", **{name: value})

    assert response.status_code == 400
    assert response.json() == {"error": f"{name} must be at most 1000 characters, not {len(value)}"}
    assert collector.get("/api/sessions", **{name: value[:1000]}).status_code == 200


def test_a_gzip_export_of_millions_of_empty_array_items_is_413_in_bounded_memory(
    collector_process: CollectorProcess,
) -> None:
    # The review's export: 14 KiB of gzip, 14.3 MiB inflated (under the 16 MiB limit),
    # one attribute holding 7.5 million empty values. It once took the collector from
    # 51 to 497 MiB and made its trace's answer 35.8 MiB.
    span = otlp.span("bomb", attributes={"session.id": "bomb"})
    body = gzip.compress(otlp.with_empty_items(span, "big", 7_500_000))
    assert len(body) < 16 * 1024

    response, grown = collector_process.peak_growth(
        lambda: httpx.post(
            collector_process.url + "/v1/traces",
            content=body,
            headers={**PROTOBUF, "Content-Encoding": "gzip"},
            timeout=60,
        )
    )

    assert response.status_code == 413
    assert "events, links and attributes" in Status.FromString(response.content).message
    assert grown < 96 * MIB, f"RSS grew {grown / MIB:.0f} MiB"
    url = collector_process.url
    assert httpx.get(f"{url}/api/traces/{span.trace_id.hex()}").status_code == 404
    after = httpx.post(url + "/v1/traces", content=span_body("after"), headers=PROTOBUF)
    assert after.status_code == 200


def test_a_json_export_of_millions_of_empty_objects_is_413_in_bounded_memory(
    collector_process: CollectorProcess,
) -> None:
    items = b",".join([b"{}"] * 2_000_000)
    attribute = b'{"key": "big", "value": {"arrayValue": {"values": [' + items + b"]}}}"
    document = otlp.otlp_json([{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x"}])
    body = document.replace(b'"name": "x"', b'"name": "x", "attributes": [' + attribute + b"]")

    response, grown = collector_process.peak_growth(
        lambda: httpx.post(
            collector_process.url + "/v1/traces",
            content=gzip.compress(body),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            timeout=60,
        )
    )

    assert response.status_code == 413
    assert "JSON objects and arrays" in response.json()["error"]
    assert grown < 96 * MIB, f"RSS grew {grown / MIB:.0f} MiB"


def test_an_export_under_the_request_bound_lands_with_its_array_cut_to_10000_items(
    collector: LiveCollector,
) -> None:
    span = otlp.span("wide", attributes={"session.id": "wide", "kept": "yes"})
    body = gzip.compress(otlp.with_empty_items(span, "big", 900_000))

    response = httpx.post(
        collector.url + "/v1/traces",
        content=body,
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
        timeout=60,
    )
    answer = collector.get("/api/traces/" + span.trace_id.hex())

    assert response.status_code == 200
    assert answer.status_code == 200
    assert len(answer.content) < 256 * 1024  # 900,000 nulls were 4.5 MB
    (stored,) = answer.json()["spans"]
    assert stored["attributes"]["big"] == [None] * 10_000
    assert stored["attributes"]["kept"] == "yes"
    assert stored["attributes"]["neatlogs.collector.truncated"] == {"items": 890_000}
    assert collector.get("/api/sessions/wide").json()["span_count"] == 1
