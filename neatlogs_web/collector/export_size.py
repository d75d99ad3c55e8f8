"""How many spans and parts an export request carries, counted before it is parsed.

Parsing builds an object for every element of every repeated field, however small: an
empty array item is 2 bytes on the wire and about 50 once parsed, an empty span 2 bytes
and about 180. Within the body limit that is hundreds of MiB, so the elements are
counted on the wire first, where skipping one costs nothing but a few byte reads, and a
request over its bounds is refused before anything is built.

The protobuf walk follows the OTLP schema from its descriptors, so a field a newer
OTLP version adds is counted too. A JSON body is counted by its objects and arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_LENGTH_DELIMITED: Final = 2
_FIXED_SIZES: Final = {1: 8, 5: 4}  # wire type -> bytes: fixed64 / double, fixed32 / float
_VARINT: Final = 0
_MAX_VARINT_BYTES: Final = 10
#: As deep as protobuf itself parses messages.
_MAX_NESTING: Final = 100


class MalformedWire(ValueError):
    """The body is not protobuf at all; the caller answers 400."""


@dataclass(frozen=True, slots=True)
class ExportSize:
    """Spans and parts (every other element of a repeated field: attributes, events,
    links, array and key/value list items, at any depth) counted in one request; a walk
    stops early, so a count past its limit is only known to be past it."""

    spans: int
    parts: int


# What one record of a repeated field counts as.
_SPAN: Final = 0
_ELEMENT: Final = 1
_PACKED: Final = 2  # a packed repeated number: one record, up to a value per byte
_TEXT_TYPES: Final = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


@dataclass(slots=True)
class _Shape:
    """How to walk one message type: what its repeated fields count as, and which of
    its fields hold a message to walk into."""

    counted: dict[int, int] = field(default_factory=dict)
    children: dict[int, _Shape] = field(default_factory=dict)


def _shape(descriptor: Descriptor, into_spans: bool, known: dict[str, _Shape]) -> _Shape:
    shape = known.get(descriptor.full_name)
    if shape is not None:
        return shape  # AnyValue holds arrays of AnyValue: the shapes are recursive
    shape = known[descriptor.full_name] = _Shape()
    for child in descriptor.fields:
        message = child.message_type
        is_span = message is not None and message.full_name == Span.DESCRIPTOR.full_name
        if _is_repeated(child):
            if is_span:
                shape.counted[child.number] = _SPAN
            elif message is None and child.type not in _TEXT_TYPES:
                shape.counted[child.number] = _PACKED
            else:
                shape.counted[child.number] = _ELEMENT
        if message is not None and (into_spans or not is_span):
            shape.children[child.number] = _shape(message, into_spans, known)
    return shape


def _is_repeated(member: FieldDescriptor) -> bool:
    # protobuf 5 says so in `label`; later versions in `is_repeated`, the only one the
    # type stubs know.
    repeated: bool | None = getattr(member, "is_repeated", None)
    if repeated is None:
        repeated = getattr(member, "label", None) == FieldDescriptor.LABEL_REPEATED
    return repeated


# Spans are counted in every request; what is inside them only where there could be too
# much of it (see `protobuf_size`).
_TO_SPANS: Final = _shape(ExportTraceServiceRequest.DESCRIPTOR, False, {})
_EVERYTHING: Final = _shape(ExportTraceServiceRequest.DESCRIPTOR, True, {})


def protobuf_size(body: bytes, *, max_spans: int, max_parts: int) -> ExportSize:
    """Count an `ExportTraceServiceRequest`'s spans and parts without parsing it,
    stopping as soon as either passes its limit; raise `MalformedWire` on bytes that
    are not protobuf.

    Each element takes at least 2 bytes, so a body under twice `max_parts` cannot hold
    too many parts: only its spans are counted then, a byte read or two per span.
    """
    spans = parts = 0
    shape = _EVERYTHING if len(body) // 2 > max_parts else _TO_SPANS
    position, end = 0, len(body)
    # Where to resume each enclosing message: depth first, so the walk holds one entry
    # per level of nesting, never one per element.
    enclosing: list[tuple[int, int, _Shape]] = []
    try:
        while True:
            if position >= end:
                if position > end:
                    raise MalformedWire("a field runs past the end of its message")
                if not enclosing:
                    return ExportSize(spans, parts)
                position, end, shape = enclosing.pop()
                continue
            tag, position = _varint(body, position)
            number, wire_type = tag >> 3, tag & 7
            kind = shape.counted.get(number)
            if kind == _SPAN:
                spans += 1
            elif kind is not None:
                parts += 1
            if wire_type == _LENGTH_DELIMITED:
                size, position = _varint(body, position)
                if kind == _PACKED:
                    parts += size - 1
                child = shape.children.get(number)
                if child is not None:
                    if len(enclosing) >= _MAX_NESTING:
                        raise MalformedWire(f"messages nest deeper than {_MAX_NESTING} levels")
                    enclosing.append((position + size, end, shape))
                    end, shape = position + size, child
                else:
                    position += size
            elif wire_type == _VARINT:
                _, position = _varint(body, position)
            elif wire_type in _FIXED_SIZES:
                position += _FIXED_SIZES[wire_type]
            else:
                raise MalformedWire(f"wire type {wire_type} has no place in OTLP")
            if spans > max_spans or parts > max_parts:
                return ExportSize(spans, parts)
    except IndexError:
        raise MalformedWire("the body ends inside a field") from None


def _varint(data: bytes, position: int) -> tuple[int, int]:
    """The varint at `position`, and where the next field starts."""
    byte = data[position]
    if byte < 0x80:
        return byte, position + 1  # tags and short lengths: almost every varint
    value = shift = 0
    for offset in range(_MAX_VARINT_BYTES):
        byte = data[position + offset]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position + offset + 1
        shift += 7
    raise MalformedWire("a varint runs past 10 bytes")


# A JSON string (with its escapes) or the opening of an object or array.
_JSON_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]')


def json_containers(body: bytes, limit: int) -> int:
    """The objects and arrays of a JSON text, counted up to just past `limit`.

    Brackets are counted at the speed of a byte search first; only a body with more
    than `limit` of them, which a string full of brackets can have, is read token by
    token to leave out those inside strings.
    """
    rough = body.count(b"{") + body.count(b"[")
    if rough <= limit:
        return rough
    count = 0
    for token in _JSON_TOKEN.finditer(body):
        if token.end() - token.start() == 1:
            count += 1
            if count > limit:
                break
    return count
