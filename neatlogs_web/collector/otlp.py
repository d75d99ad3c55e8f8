"""OTLP trace requests, protobuf or JSON, turned into plain span records.

The rest of the collector never sees protobuf messages: it gets `Span` records whose
ids are lowercase hex and whose attribute values are JSON-ready Python values, so
storage and the API do not depend on the wire format a sender chose.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Format = Literal["protobuf", "json"]

#: The names OTLP uses in `Span.kind` and `Status.code`, without their prefixes.
SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
STATUS_ERROR = 2

# Times are unsigned 64-bit in OTLP and signed in SQLite; no real clock reaches the cap.
_MAX_NS = 2**63 - 1
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
_ZERO_TRACE_ID = bytes(_TRACE_ID_BYTES)
_ZERO_SPAN_ID = bytes(_SPAN_ID_BYTES)


class MalformedRequest(ValueError):
    """The body is not an OTLP trace export request; the sender gets a 400 with this text."""


#: Events, links and attributes one span may bring on average, for the request bound.
PARTS_PER_SPAN: Final = 20


class TooManySpans(ValueError):
    """The request carries more spans than one request may; the sender gets a 413."""

    def __init__(self, count: int, limit: int, detail: str | None = None) -> None:
        what = detail or f"{count} spans in one request is over the collector's limit of {limit}"
        super().__init__(f"{what}: send smaller batches")


@dataclass(slots=True)
class Span:
    """One span as stored; `resource` and `scope` are shared by the spans of one batch part.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``,
    which made building the spans of a request a tenth of its ingest time.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    resource: dict[str, Any]
    scope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Batch:
    """The spans of one request that can be stored, and what was wrong with the others."""

    spans: list[Span]
    rejected: int
    reason: str


def decode(body: bytes, fmt: Format, *, max_spans: int | None = None) -> Batch:
    """Parse one export request body; raise `MalformedRequest` if it is not one, and
    `TooManySpans` if it holds more than `max_spans`, before any span is built."""
    request = _parse_protobuf(body) if fmt == "protobuf" else _parse_json(body, max_spans)
    if max_spans is not None:
        _check_size(request, max_spans)
    spans: list[Span] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {
                "name": scope_spans.scope.name,
                "version": scope_spans.scope.version,
                "attributes": attributes_to_dict(scope_spans.scope.attributes),
            }
            for span in scope_spans.spans:
                # Each field read on a protobuf message builds a new Python object: read
                # each once.
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                # The spec makes all-zero or wrongly sized ids invalid; such a span could
                # never be joined to its trace, so it is rejected rather than stored.
                if (
                    len(trace_id) != _TRACE_ID_BYTES
                    or trace_id == _ZERO_TRACE_ID
                    or len(span_id) != _SPAN_ID_BYTES
                    or span_id == _ZERO_SPAN_ID
                    or len(parent) not in (0, _SPAN_ID_BYTES)
                ):
                    rejected += 1
                    continue
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                status = span.status
                events = span.events
                links = span.links
                spans.append(
                    Span(
                        trace_id=trace_id.hex(),
                        span_id=span_id.hex(),
                        parent_span_id=parent.hex() or None,
                        name=span.name,
                        kind=span.kind,
                        start_ns=start if start < _MAX_NS else _MAX_NS,
                        end_ns=min(max(end, start), _MAX_NS),
                        status_code=status.code,
                        status_message=status.message,
                        attributes=attributes_to_dict(span.attributes),
                        events=[
                            {
                                "name": event.name,
                                "time_ns": min(event.time_unix_nano, _MAX_NS),
                                "attributes": attributes_to_dict(event.attributes),
                            }
                            for event in events
                        ]
                        if events
                        else [],
                        links=[
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": attributes_to_dict(link.attributes),
                            }
                            for link in links
                        ]
                        if links
                        else [],
                        resource=resource,
                        scope=scope,
                    )
                )
    reason = f"{rejected} span(s) had an invalid trace, span or parent span id" if rejected else ""
    return Batch(spans=spans, rejected=rejected, reason=reason)


def encode_response(batch: Batch, fmt: Format) -> bytes:
    """The success body OTLP asks for, with `partial_success` when spans were rejected."""
    response = ExportTraceServiceResponse()
    if batch.rejected:
        response.partial_success.rejected_spans = batch.rejected
        response.partial_success.error_message = batch.reason
    if fmt == "protobuf":
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response)).encode()


def attributes_to_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key/value pairs as a dict; a repeated key keeps its last value, as SDKs do."""
    return {kv.key: any_value(kv.value) for kv in attributes}


def any_value(value: AnyValue) -> Any:
    """An OTLP `AnyValue` as the JSON value a reader expects (bytes as base64)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "double_value" and not math.isfinite(value.double_value):
        # JSON has no NaN or Infinity; a browser would refuse the whole document.
        return str(value.double_value)
    return getattr(value, kind)


def _check_size(request: ExportTraceServiceRequest, max_spans: int) -> None:
    """Bound what one request may cost before any span is built: its spans, and the
    events, links and attributes they carry (each a few bytes on the wire, each a
    Python object and a stored row once decoded)."""
    all_spans = [
        span
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    if len(all_spans) > max_spans:
        raise TooManySpans(len(all_spans), max_spans)
    parts = sum(len(s.events) + len(s.links) + len(s.attributes) for s in all_spans)
    limit = max_spans * PARTS_PER_SPAN
    if parts > limit:
        raise TooManySpans(
            len(all_spans),
            max_spans,
            detail=f"{parts} events, links and attributes in one request is over the "
            f"collector's limit of {limit}",
        )


def _parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    try:
        return ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as exc:
        raise MalformedRequest(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from exc


def _parse_json(body: bytes, max_spans: int | None) -> ExportTraceServiceRequest:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad bytes, bad JSON, a 5,000-digit number
        raise MalformedRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedRequest("body must be a JSON object with a 'resourceSpans' list")
    try:
        count = _hex_ids_to_base64(document)
        if max_spans is not None and count > max_spans:
            raise TooManySpans(count, max_spans)
        return json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except (json_format.ParseError, TypeError, AttributeError, RecursionError) as exc:
        raise MalformedRequest(
            f"body is not an OTLP JSON ExportTraceServiceRequest: {exc}"
        ) from exc


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(document: dict[str, Any]) -> int:
    """Rewrite ids in place: OTLP JSON carries them as hex, protobuf's JSON mapping as
    base64. Return how many spans there are."""
    count = 0
    for resource_spans in _items(document, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans"):
                count += 1
                _convert_ids(span)
                for link in _items(span, "links"):
                    _convert_ids(link)
    return count


def _items(parent: Any, *names: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    for name in names:
        value = parent.get(name)
        if isinstance(value, list):
            return value
    return []


def _convert_ids(message: Any) -> None:
    if not isinstance(message, dict):
        return
    for field in _ID_FIELDS:
        value = message.get(field)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError as exc:
                raise MalformedRequest(f"{field} {value[:64]!r} is not hex") from exc
            message[field] = base64.b64encode(raw).decode()
