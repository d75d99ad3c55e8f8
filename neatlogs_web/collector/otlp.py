"""OTLP trace requests, protobuf or JSON, turned into plain span records.

The rest of the collector never sees protobuf messages: it gets `Span` records whose
ids are lowercase hex and whose attribute values are JSON-ready Python values, so
storage and the API do not depend on the wire format a sender chose.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from . import export_size
from .limits import (
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_EVENTS,
    MAX_ITEMS,
    MAX_LINKS,
    MAX_NAME,
    MAX_STRING,
    TRUNCATED_KEY,
    Cuts,
    clip,
)

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


#: Parts (events, links, attributes and the items of their values) one span may bring
#: on average, for the request bound: room for a batch of spans that each carry an
#: embedding vector of a few thousand numbers.
PARTS_PER_SPAN: Final = 50
#: A JSON object costs about four times the memory of a protobuf message once parsed,
#: so a JSON request may hold half as many objects and arrays as a protobuf one parts.
_JSON_CONTAINERS_PER_SPAN: Final = PARTS_PER_SPAN // 2


class TooLarge(ValueError):
    """The request carries more than one request may; the sender gets a 413."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"over the collector's limit of {limit} {what} in one request: send smaller batches"
        )


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
    """The spans of one request that can be stored, and what was wrong with the others
    or with what the stored ones carry."""

    spans: list[Span]
    rejected: int
    reason: str


def decode(body: bytes, fmt: Format, *, max_spans: int | None = None) -> Batch:
    """Parse one export request body; raise `MalformedRequest` if it is not one, and
    `TooLarge` if it holds more than `max_spans` spans (or their parts), before
    anything is built. What a span carries past the bounds of `limits` is cut."""
    parse = _parse_protobuf if fmt == "protobuf" else _parse_json
    request = parse(body, max_spans)
    spans: list[Span] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        resource = _resource(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = _scope(scope_spans.scope)
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
                # What the bounds cut from this span, its events and links.
                cuts = Cuts()
                attributes = attributes_to_dict(span.attributes, cuts)
                name = clip(span.name, MAX_NAME, cuts)
                status_message = clip(status.message, MAX_STRING, cuts)
                spans.append(
                    Span(
                        trace_id=trace_id.hex(),
                        span_id=span_id.hex(),
                        parent_span_id=parent.hex() or None,
                        name=name,
                        kind=span.kind,
                        start_ns=start if start < _MAX_NS else _MAX_NS,
                        end_ns=min(max(end, start), _MAX_NS),
                        status_code=status.code,
                        status_message=status_message,
                        events=_events(events, cuts) if events else [],
                        links=_links(links, cuts) if links else [],
                        # After events and links: the mark counts their cuts too.
                        attributes=_marked(attributes, cuts),
                        resource=resource,
                        scope=scope,
                    )
                )
    reason = f"{rejected} span(s) had an invalid trace, span or parent span id" if rejected else ""
    return Batch(spans=spans, rejected=rejected, reason=reason)


def encode_response(batch: Batch, fmt: Format) -> bytes:
    """The success body OTLP asks for, with `partial_success` when spans were rejected
    or, with none rejected, when the batch has a warning (`reason`)."""
    response = ExportTraceServiceResponse()
    if batch.rejected or batch.reason:
        response.partial_success.rejected_spans = batch.rejected
        response.partial_success.error_message = batch.reason
    if fmt == "protobuf":
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response)).encode()


def attributes_to_dict(
    attributes: Sequence[KeyValue], cuts: Cuts, limit: int = MAX_ATTRIBUTES, depth: int = 0
) -> dict[str, Any]:
    """OTLP key/value pairs as a dict; a repeated key keeps its last value, as SDKs do.
    Pairs past `limit` are left out and counted in `cuts`."""
    if len(attributes) > limit:
        if depth:  # the pairs of a key/value list value are its items
            cuts.items += len(attributes) - limit
        else:
            cuts.attributes += len(attributes) - limit
        attributes = attributes[:limit]
    return {kv.key: any_value(kv.value, cuts, depth) for kv in attributes}


def any_value(value: AnyValue, cuts: Cuts, depth: int = 0) -> Any:
    """An OTLP `AnyValue` as the JSON value a reader expects (bytes as base64), cut to
    the bounds of `limits`; `depth` is how many arrays and lists it is inside."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return clip(value.string_value, MAX_STRING, cuts)
    if kind == "array_value" or kind == "kvlist_value":
        if depth >= MAX_DEPTH:
            cuts.nested += 1
            return None
        if kind == "kvlist_value":
            return attributes_to_dict(value.kvlist_value.values, cuts, MAX_ITEMS, depth + 1)
        items: Sequence[AnyValue] = value.array_value.values
        if len(items) > MAX_ITEMS:
            cuts.items += len(items) - MAX_ITEMS
            items = items[:MAX_ITEMS]
        return [any_value(item, cuts, depth + 1) for item in items]
    if kind == "bytes_value":
        data = value.bytes_value
        if len(data) > MAX_STRING:
            cuts.characters += len(data) - MAX_STRING
            data = data[:MAX_STRING]
        return base64.b64encode(data).decode()
    if kind == "double_value" and not math.isfinite(value.double_value):
        # JSON has no NaN or Infinity; a browser would refuse the whole document.
        return str(value.double_value)
    return getattr(value, kind)


def _marked(attributes: dict[str, Any], cuts: Cuts) -> dict[str, Any]:
    """The attributes of a span, resource or scope, saying under `TRUNCATED_KEY` what
    the bounds cut from it."""
    if cuts:
        attributes[TRUNCATED_KEY] = cuts.counts()
    return attributes


def _resource(attributes: Sequence[KeyValue]) -> dict[str, Any]:
    cuts = Cuts()
    return _marked(attributes_to_dict(attributes, cuts), cuts)


def _scope(scope: InstrumentationScope) -> dict[str, Any]:
    cuts = Cuts()
    attributes = attributes_to_dict(scope.attributes, cuts)
    name = clip(scope.name, MAX_NAME, cuts)
    version = clip(scope.version, MAX_NAME, cuts)
    return {"name": name, "version": version, "attributes": _marked(attributes, cuts)}


def _events(events: Sequence[ProtoSpan.Event], cuts: Cuts) -> list[dict[str, Any]]:
    if len(events) > MAX_EVENTS:
        cuts.events += len(events) - MAX_EVENTS
        events = events[:MAX_EVENTS]
    return [
        {
            "name": clip(event.name, MAX_NAME, cuts),
            "time_ns": min(event.time_unix_nano, _MAX_NS),
            "attributes": attributes_to_dict(event.attributes, cuts),
        }
        for event in events
    ]


def _links(links: Sequence[ProtoSpan.Link], cuts: Cuts) -> list[dict[str, Any]]:
    if len(links) > MAX_LINKS:
        cuts.links += len(links) - MAX_LINKS
        links = links[:MAX_LINKS]
    return [
        {
            "trace_id": link.trace_id.hex(),
            "span_id": link.span_id.hex(),
            "attributes": attributes_to_dict(link.attributes, cuts),
        }
        for link in links
    ]


def _parse_protobuf(body: bytes, max_spans: int | None) -> ExportTraceServiceRequest:
    if max_spans is not None:
        _check_protobuf_size(body, max_spans)
    try:
        return ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as exc:
        raise MalformedRequest(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from exc


def _check_protobuf_size(body: bytes, max_spans: int) -> None:
    """Refuse a request with too many spans or parts before protobuf builds them."""
    max_parts = max_spans * PARTS_PER_SPAN
    try:
        size = export_size.protobuf_size(body, max_spans=max_spans, max_parts=max_parts)
    except export_size.MalformedWire as exc:
        raise MalformedRequest(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from exc
    if size.spans > max_spans:
        raise TooLarge("spans", max_spans)
    if size.parts > max_parts:
        raise TooLarge("events, links and attributes (and items of their values)", max_parts)


def _parse_json(body: bytes, max_spans: int | None) -> ExportTraceServiceRequest:
    if max_spans is not None:
        limit = max_spans * _JSON_CONTAINERS_PER_SPAN
        if export_size.json_containers(body, limit) > limit:
            raise TooLarge("JSON objects and arrays", limit)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad bytes, bad JSON, a 5,000-digit number
        raise MalformedRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedRequest("body must be a JSON object with a 'resourceSpans' list")
    try:
        count = _hex_ids_to_base64(document)
        if max_spans is not None and count > max_spans:
            raise TooLarge("spans", max_spans)
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
