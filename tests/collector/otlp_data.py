"""Builders for OTLP export requests, so tests state only what they care about."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

_ids = itertools.count(1)
BASE_NS = 1_700_000_000_000_000_000


def new_trace_id() -> bytes:
    return next(_ids).to_bytes(16, "big")


def new_span_id() -> bytes:
    return next(_ids).to_bytes(8, "big")


def value(raw: Any) -> AnyValue:
    if isinstance(raw, bool):
        return AnyValue(bool_value=raw)
    if isinstance(raw, int):
        return AnyValue(int_value=raw)
    if isinstance(raw, float):
        return AnyValue(double_value=raw)
    if isinstance(raw, bytes):
        return AnyValue(bytes_value=raw)
    if isinstance(raw, list):
        out = AnyValue()
        out.array_value.values.extend(value(item) for item in raw)
        return out
    if isinstance(raw, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(kvs(raw))
        return out
    return AnyValue(string_value=str(raw))


def kvs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(raw)) for key, raw in attributes.items()]


def span(
    name: str,
    *,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent: bytes = b"",
    start_ms: float = 0,
    duration_ms: float = 10,
    attributes: dict[str, Any] | None = None,
    error: str | None = None,
    kind: Span.SpanKind.ValueType = Span.SPAN_KIND_INTERNAL,
    base_ns: int = BASE_NS,
) -> Span:
    start = base_ns + int(start_ms * 1_000_000)
    message = Span(
        trace_id=trace_id or new_trace_id(),
        span_id=span_id or new_span_id(),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1_000_000),
        attributes=kvs(attributes or {}),
    )
    if error is not None:
        message.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return message


def request(
    *spans: Span, resource: dict[str, Any] | None = None, scope: str = "tests"
) -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans()
    resource_spans.resource.attributes.extend(kvs(resource or {"service.name": "tests"}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def protobuf(*spans: Span, resource: dict[str, Any] | None = None, scope: str = "tests") -> bytes:
    return request(*spans, resource=resource, scope=scope).SerializeToString()


def length_delimited(field: int, payload: bytes) -> bytes:
    """One protobuf field of wire type 2: its tag, its length as a varint, `payload`."""
    header = bytearray([field << 3 | 2])
    size = len(payload)
    while size >= 0x80:
        header.append(size & 0x7F | 0x80)
        size >>= 7
    header.append(size)
    return bytes(header) + payload


def with_empty_items(span: Span, key: str, count: int) -> bytes:
    """A protobuf request of `span` plus an attribute `key` whose array holds `count`
    empty values, written without building them.

    Serialized messages concatenate into one that has the repeated fields of both, so
    the array is one empty item's bytes, repeated, and each enclosing message is
    written around it field by field.
    """
    one_item = ArrayValue(values=[AnyValue()]).SerializeToString()
    attribute = KeyValue(key=key).SerializeToString() + length_delimited(
        2, length_delimited(5, one_item * count)
    )
    span_bytes = span.SerializeToString() + length_delimited(9, attribute)
    scope_spans = ScopeSpans(scope=InstrumentationScope(name="tests")).SerializeToString()
    resource_spans = ResourceSpans(resource=Resource(attributes=kvs({"service.name": "tests"})))
    return length_delimited(
        1,
        resource_spans.SerializeToString()
        + length_delimited(2, scope_spans + length_delimited(2, span_bytes)),
    )


def otlp_json(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> bytes:
    """An OTLP JSON body as SDKs write it: hex ids, camelCase, int64 as strings."""
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": k, "value": {"stringValue": v}}
                            for k, v in (resource or {"service.name": "json-sender"}).items()
                        ]
                    },
                    "scopeSpans": [{"scope": {"name": "json"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def json_span(
    name: str,
    trace_id: str,
    span_id: str,
    *,
    parent: str = "",
    session: str | None = None,
    start_ns: int | None = None,
) -> dict[str, Any]:
    start = start_ns or time.time_ns()
    attributes: list[dict[str, Any]] = [{"key": "tokens", "value": {"intValue": "42"}}]
    if session is not None:
        attributes.append({"key": "session.id", "value": {"stringValue": session}})
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 2,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 5_000_000),
        "attributes": attributes,
        "events": [
            {
                "timeUnixNano": str(start + 1_000_000),
                "name": "thinking",
                "attributes": [{"key": "step", "value": {"intValue": 1}}],
            }
        ],
        "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
    }
