"""ExportTraceServiceRequest bytes -> gotel Spans: what the text exporters print.

Only the parts gotel's encoder writes are read (ids, name, kind, times, attributes, status,
flags, resource, scope); anything else is skipped, as protobuf readers do.
"""

from __future__ import annotations

from typing import Any

from gotel.export.otlp_encode import FLAGS_IS_REMOTE
from gotel.export.protobuf import DecodeError, as_double, fields, signed64
from gotel.trace.span import Span, SpanKind

ResourceAttributes = dict[str, Any]


def _any_value(buf: bytes) -> Any:
    for number, _wire, value in fields(buf):
        if number == 1:
            return bytes(value).decode("utf-8", "replace")
        if number == 2:
            return bool(value)
        if number == 3:
            return signed64(value)
        if number == 4:
            return as_double(value)
        if number == 5:
            return [_any_value(v) for n, _w, v in fields(value) if n == 1]
        if number == 7:
            return bytes(value)
    return None


def _key_value(buf: bytes) -> tuple[str, Any]:
    key, value = "", None
    for number, _wire, raw in fields(buf):
        if number == 1:
            key = bytes(raw).decode("utf-8", "replace")
        elif number == 2:
            value = _any_value(raw)
    return key, value


def _span(buf: bytes, scope: str) -> Span:
    values: dict[int, Any] = {}
    attributes: dict[str, Any] = {}
    error, message = False, ""
    for number, _wire, raw in fields(buf):
        if number == 9:
            key, value = _key_value(raw)
            attributes[key] = value
        elif number == 15:
            for status_field, _w, status_value in fields(raw):
                if status_field == 2:
                    message = bytes(status_value).decode("utf-8", "replace")
                elif status_field == 3:
                    error = status_value == 2
        else:
            values[number] = raw
    flags = values.get(16, 0)
    return Span(
        name=bytes(values.get(5, b"")).decode("utf-8", "replace"),
        kind=SpanKind(values.get(6, SpanKind.INTERNAL)),
        trace_id=bytes(values.get(1, b"")),
        span_id=bytes(values.get(2, b"")),
        parent_span_id=bytes(values[4]) if values.get(4) else None,
        start_ns=values.get(7, 0),
        end_ns=values.get(8, 0),
        attributes=attributes,
        error=error,
        status_message=message if error else "",
        scope=scope,
        remote_parent=bool(flags & FLAGS_IS_REMOTE),
        sampled=bool(flags & 1),
    )


def _scope_name(buf: bytes) -> str:
    for number, _wire, raw in fields(buf):
        if number == 1:
            return bytes(raw).decode("utf-8", "replace")
    return ""


def decode_resource(buf: bytes) -> ResourceAttributes:
    """A Resource message's attributes."""
    return dict(_key_value(raw) for n, _w, raw in fields(buf) if n == 1)


def decode_request(payload: bytes) -> list[tuple[ResourceAttributes, list[Span]]]:
    """(resource attributes, spans) for each ResourceSpans of the request."""
    out: list[tuple[ResourceAttributes, list[Span]]] = []
    try:
        for number, _wire, resource_spans in fields(payload):
            if number != 1:
                continue
            resource: ResourceAttributes = {}
            spans: list[Span] = []
            for field_number, _w, raw in fields(resource_spans):
                if field_number == 1:
                    resource = decode_resource(raw)
                elif field_number == 2:
                    scope, encoded = "", []
                    for n, _w2, item in fields(raw):
                        if n == 1:
                            scope = _scope_name(item)
                        elif n == 2:
                            encoded.append(item)
                    spans.extend(_span(e, scope) for e in encoded)
            out.append((resource, spans))
    except (DecodeError, ValueError) as exc:
        raise DecodeError(f"not an OTLP trace request: {exc}") from exc
    return out
