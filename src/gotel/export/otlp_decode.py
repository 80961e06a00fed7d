"""ExportTraceServiceRequest bytes -> gotel Spans: what the text exporters print.

Only the parts gotel's encoder writes are read (ids, name, kind, times, attributes, status,
flags, resource, scope); anything else is skipped, as protobuf readers do. Written as flat
loops over (start, end) ranges of one buffer: no copies of nested messages, no generators.
"""

from __future__ import annotations

import struct
from typing import Any

from gotel.export.otlp_encode import FLAGS_IS_REMOTE
from gotel.export.protobuf import (
    FIXED32,
    FIXED64,
    LENGTH_DELIMITED,
    VARINT,
    DecodeError,
    as_double,
    signed64,
)
from gotel.trace.span import Span, SpanKind

ResourceAttributes = dict[str, Any]
Fields = list[tuple[int, int, int, int]]  # (field number, wire type, value or start, end)

_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            break
    raise DecodeError("truncated or overlong varint")


def _fields(buf: bytes, pos: int, end: int) -> Fields:
    """The fields of the message in buf[pos:end]: for length-delimited ones (start, end)
    of their payload, for the others their value (in the third slot)."""
    out: Fields = []
    while pos < end:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == LENGTH_DELIMITED:
            length = buf[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise DecodeError(f"field {number}: length {length} past the end")
            out.append((number, wire, pos, stop))
            pos = stop
        elif wire == VARINT:
            value, pos = _varint(buf, pos, end)
            out.append((number, wire, value, 0))
        elif wire == FIXED64:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64")
            out.append((number, wire, _U64(buf, pos)[0], 0))
            pos += 8
        elif wire == FIXED32:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32")
            out.append((number, wire, _U32(buf, pos)[0], 0))
            pos += 4
        else:
            raise DecodeError(f"field {number}: unsupported wire type {wire}")
    return out


def _text(buf: bytes, start: int, end: int) -> str:
    return buf[start:end].decode("utf-8", "replace")


def _any_value(buf: bytes, pos: int, end: int) -> Any:
    if pos + 1 < end:  # the common shapes: a short string, an int
        tag, length = buf[pos], buf[pos + 1]
        if tag == 0x0A and length < 0x80 and pos + 2 + length == end:
            return buf[pos + 2 : end].decode("utf-8", "replace")
        if tag == 0x18:
            value, stop = _varint(buf, pos + 1, end)
            if stop == end:
                return signed64(value)
    for number, _wire, a, b in _fields(buf, pos, end):
        if number == 1:
            return _text(buf, a, b)
        if number == 2:
            return bool(a)
        if number == 3:
            return signed64(a)
        if number == 4:
            return as_double(a)
        if number == 5:
            return [_any_value(buf, x, y) for n, _w, x, y in _fields(buf, a, b) if n == 1]
        if number == 7:
            return buf[a:b]
    return None


def _key_value(buf: bytes, pos: int, end: int) -> tuple[str, Any]:
    # The common shape, read in place: 0x0A len key 0x12 len value (lengths < 128).
    if pos + 1 < end and buf[pos] == 0x0A and buf[pos + 1] < 0x80:
        key_end = pos + 2 + buf[pos + 1]
        value_length = buf[key_end + 1] if key_end + 1 < end else 0x80
        if buf[key_end] == 0x12 and value_length < 0x80 and key_end + 2 + value_length == end:
            key = buf[pos + 2 : key_end].decode("utf-8", "replace")
            return key, _any_value(buf, key_end + 2, end)
    key, value = "", None
    for number, _wire, a, b in _fields(buf, pos, end):
        if number == 1:
            key = _text(buf, a, b)
        elif number == 2:
            value = _any_value(buf, a, b)
    return key, value


def _span(buf: bytes, pos: int, end: int, scope: str) -> Span:
    values: dict[int, Any] = {}
    attributes: dict[str, Any] = {}
    error, message = False, ""
    links: list[tuple[bytes, bytes]] = []
    for number, wire, a, b in _fields(buf, pos, end):
        if number == 9:
            key, value = _key_value(buf, a, b)
            attributes[key] = value
        elif number == 13:
            ids = {n: bytes(buf[x:y]) for n, _w, x, y in _fields(buf, a, b) if n in (1, 2)}
            links.append((ids.get(1, b""), ids.get(2, b"")))
        elif number == 15:
            for status_field, _w, x, y in _fields(buf, a, b):
                if status_field == 2:
                    message = _text(buf, x, y)
                elif status_field == 3:
                    error = x == 2
        elif wire == LENGTH_DELIMITED:
            values[number] = buf[a:b]
        else:
            values[number] = a
    flags = values.get(16, 0)
    return Span(
        name=bytes(values.get(5, b"")).decode("utf-8", "replace"),
        kind=SpanKind(values.get(6, SpanKind.INTERNAL)),
        trace_id=values.get(1, b""),
        span_id=values.get(2, b""),
        parent_span_id=values.get(4) or None,
        start_ns=values.get(7, 0),
        end_ns=values.get(8, 0),
        attributes=attributes,
        error=error,
        status_message=message if error else "",
        scope=scope,
        remote_parent=bool(flags & FLAGS_IS_REMOTE),
        sampled=bool(flags & 1),
        links=tuple(links),
    )


def _attributes(buf: bytes, pos: int, end: int) -> ResourceAttributes:
    return dict(_key_value(buf, a, b) for n, _w, a, b in _fields(buf, pos, end) if n == 1)


def decode_resource(buf: bytes) -> ResourceAttributes:
    """A Resource message's attributes."""
    return _attributes(buf, 0, len(buf))


def decode_request(payload: bytes) -> list[tuple[ResourceAttributes, list[Span]]]:
    """(resource attributes, spans) for each ResourceSpans of the request."""
    buf = bytes(payload)
    out: list[tuple[ResourceAttributes, list[Span]]] = []
    try:
        for number, _wire, a, b in _fields(buf, 0, len(buf)):
            if number != 1:
                continue
            resource: ResourceAttributes = {}
            spans: list[Span] = []
            for field_number, _w, x, y in _fields(buf, a, b):
                if field_number == 1:
                    resource = _attributes(buf, x, y)
                elif field_number == 2:
                    scope, encoded = "", []
                    for n, _w2, s, e in _fields(buf, x, y):
                        if n == 1:
                            scope = next(
                                (_text(buf, p, q) for k, _, p, q in _fields(buf, s, e) if k == 1),
                                "",
                            )
                        elif n == 2:
                            encoded.append((s, e))
                    spans.extend(_span(buf, s, e, scope) for s, e in encoded)
            out.append((resource, spans))
    except (DecodeError, ValueError, IndexError) as exc:
        raise DecodeError(f"not an OTLP trace request: {exc}") from exc
    return out
