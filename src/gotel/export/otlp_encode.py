"""OTLP trace messages encoded straight to protobuf bytes, one span at a time, no SDK objects.

Field numbers follow opentelemetry-proto (trace/v1/trace.proto, common/v1/common.proto,
collector/trace/v1/trace_service.proto). A span is encoded once, in the thread that read its
event, into the complete `ScopeSpans.spans` field it will be sent as; requests are then
assembled by joining bytes. Attribute values and span names repeat from span to span (routes,
methods, hosts), so their encodings are cached per key until a key shows too many distinct
values to be worth it (paths, ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gotel.export.protobuf import (
    FIXED32,
    FIXED64,
    LENGTH_DELIMITED,
    VARINT,
    double,
    fixed32,
    fixed64,
    length_delimited,
    tag,
    varint,
)

if TYPE_CHECKING:
    from gotel.trace.span import Span

# Span (trace.proto)
_SPAN_TRACE_ID = tag(1, LENGTH_DELIMITED) + b"\x10"  # always 16 bytes
_SPAN_SPAN_ID = tag(2, LENGTH_DELIMITED) + b"\x08"
_SPAN_PARENT_ID = tag(4, LENGTH_DELIMITED) + b"\x08"
_SPAN_NAME = tag(5, LENGTH_DELIMITED)
_SPAN_KIND = tag(6, VARINT)
_SPAN_START = tag(7, FIXED64)
_SPAN_END = tag(8, FIXED64)
_SPAN_ATTRIBUTE = tag(9, LENGTH_DELIMITED)
_SPAN_LINK = tag(13, LENGTH_DELIMITED)
_LINK_TRACE_ID = tag(1, LENGTH_DELIMITED) + b"\x10"
_LINK_SPAN_ID = tag(2, LENGTH_DELIMITED) + b"\x08"
_SPAN_STATUS = tag(15, LENGTH_DELIMITED)
_SPAN_FLAGS = tag(16, FIXED32)
_STATUS_MESSAGE = tag(2, LENGTH_DELIMITED)
_STATUS_CODE_ERROR = tag(3, VARINT) + varint(2)  # STATUS_CODE_ERROR
# SpanFlags: the low byte carries the W3C trace flags; bit 8 says bit 9 is meaningful,
# bit 9 that the parent is remote.
FLAGS_HAS_IS_REMOTE = 0x100
FLAGS_IS_REMOTE = 0x200


def span_flags(trace_flags: int, remote_parent: bool) -> int:
    """OTLP Span.flags: the W3C trace flags, and whether the parent is remote."""
    flags = (trace_flags & 0xFF) | FLAGS_HAS_IS_REMOTE
    return flags | FLAGS_IS_REMOTE if remote_parent else flags


# KeyValue / AnyValue (common.proto)
_KV_KEY = tag(1, LENGTH_DELIMITED)
_KV_VALUE = tag(2, LENGTH_DELIMITED)
_ANY_STRING = tag(1, LENGTH_DELIMITED)
_ANY_BOOL = tag(2, VARINT)
_ANY_INT = tag(3, VARINT)
_ANY_DOUBLE = tag(4, FIXED64)
_ANY_ARRAY = tag(5, LENGTH_DELIMITED)
_ARRAY_VALUE = tag(1, LENGTH_DELIMITED)

# Containers
_SCOPE_SPANS_SCOPE = tag(1, LENGTH_DELIMITED)
_SCOPE_SPANS_SPAN = tag(2, LENGTH_DELIMITED)
_RESOURCE_SPANS_RESOURCE = tag(1, LENGTH_DELIMITED)
_RESOURCE_SPANS_SCOPE_SPANS = tag(2, LENGTH_DELIMITED)
_REQUEST_RESOURCE_SPANS = tag(1, LENGTH_DELIMITED)
_RESOURCE_ATTRIBUTE = tag(1, LENGTH_DELIMITED)
_SCOPE_NAME = tag(1, LENGTH_DELIMITED)
_SCOPE_VERSION = tag(2, LENGTH_DELIMITED)

# Distinct values remembered per attribute key (and span names per encoder) before the key
# counts as high-cardinality and is encoded afresh each time.
CACHED_VALUES_PER_KEY = 512
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _utf8(text: str) -> bytes:
    # Go strings may hold any bytes; a protobuf string must be UTF-8. The event decoder
    # already replaced invalid sequences, and lone surrogates cannot come from it, but an
    # attribute computed by a probe could hold one: never let it fail a whole batch.
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def any_value(value: Any) -> bytes:
    """An AnyValue message for a str, bool, int, float or a sequence of those."""
    if isinstance(value, str):
        return length_delimited(_ANY_STRING, _utf8(value))
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:  # OTLP ints are int64
            return length_delimited(_ANY_STRING, str(value).encode())
        return _ANY_INT + varint(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + double(value)
    if isinstance(value, list | tuple):
        items = b"".join(length_delimited(_ARRAY_VALUE, any_value(v)) for v in value)
        return length_delimited(_ANY_ARRAY, items)
    return length_delimited(_ANY_STRING, _utf8(str(value)))


def key_value(field_key: bytes, key: str, value: Any) -> bytes:
    """One complete repeated-KeyValue field: `field_key`, then KeyValue{key, value}."""
    body = length_delimited(_KV_KEY, key.encode()) + length_delimited(_KV_VALUE, any_value(value))
    return length_delimited(field_key, body)


class AttributeEncoder:
    """Encodes attribute maps as repeated KeyValue fields, caching what repeats."""

    __slots__ = ("_cache", "_field_key", "_limit")

    def __init__(self, field_key: bytes = _SPAN_ATTRIBUTE, limit: int = CACHED_VALUES_PER_KEY):
        self._field_key = field_key
        self._limit = limit
        # key -> {value: encoded field}, or None once the key proved high-cardinality.
        self._cache: dict[str, dict[Any, bytes] | None] = {}

    def encode(self, attributes: Mapping[str, Any]) -> bytes:
        cache, out = self._cache, []
        for key, value in attributes.items():
            kind = type(value)
            if kind is not str and kind is not int:  # bool == 1 would collide with int 1
                out.append(key_value(self._field_key, key, value))
                continue
            values = cache.get(key, False)
            if values:
                encoded = values.get(value)
                if encoded is not None:
                    out.append(encoded)
                    continue
            encoded = key_value(self._field_key, key, value)
            out.append(encoded)
            if values is False:
                cache[key] = {value: encoded}
            elif values is not None:
                if len(values) < self._limit:
                    values[value] = encoded
                else:
                    cache[key] = None
        return b"".join(out)


class SpanEncoder:
    """Encodes spans as complete `ScopeSpans.spans` fields (key, length, Span message)."""

    __slots__ = ("_attributes", "_limit", "_names")

    def __init__(self, limit: int = CACHED_VALUES_PER_KEY) -> None:
        self._attributes = AttributeEncoder(limit=limit)
        self._names: dict[str, bytes] = {}
        self._limit = limit

    def encode(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes | None,
        flags: int,
        name: str,
        kind: int,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, Any],
        error: bool = False,
        status_message: str = "",
        links: bytes = b"",
        /,
    ) -> bytes:
        """`flags`: the Span.flags field (trace flags | FLAGS_HAS_IS_REMOTE | FLAGS_IS_REMOTE);
        `links`: encoded Span.links fields (encode_link). Positional: this runs once per span."""
        encoded_name = self._names.get(name)
        if encoded_name is None:
            encoded_name = length_delimited(_SPAN_NAME, _utf8(name))
            if len(self._names) < self._limit:
                self._names[name] = encoded_name
        parts = [_SPAN_TRACE_ID, trace_id, _SPAN_SPAN_ID, span_id]
        if parent_span_id is not None:
            parts += (_SPAN_PARENT_ID, parent_span_id)
        parts += (
            encoded_name,
            _SPAN_KIND,
            varint(kind),
            _SPAN_START,
            fixed64(start_ns),
            _SPAN_END,
            fixed64(end_ns),
            self._attributes.encode(attributes),
        )
        if links:
            parts.append(links)
        if error:
            status = _STATUS_CODE_ERROR
            if status_message:
                status = length_delimited(_STATUS_MESSAGE, _utf8(status_message)) + status
            parts.append(length_delimited(_SPAN_STATUS, status))
        parts += (_SPAN_FLAGS, fixed32(flags))
        return length_delimited(_SCOPE_SPANS_SPAN, b"".join(parts))


def encode_link(trace_id: bytes, span_id: bytes) -> bytes:
    """A complete `Span.links` field: a link to the span (trace_id, span_id)."""
    return length_delimited(_SPAN_LINK, _LINK_TRACE_ID + trace_id + _LINK_SPAN_ID + span_id)


def encode_resource(attributes: Mapping[str, Any]) -> bytes:
    """A Resource message."""
    return b"".join(key_value(_RESOURCE_ATTRIBUTE, k, v) for k, v in attributes.items())


def encode_scope(name: str, version: str) -> bytes:
    """An InstrumentationScope message."""
    return length_delimited(_SCOPE_NAME, name.encode()) + length_delimited(
        _SCOPE_VERSION, version.encode()
    )


def scope_spans(scope: bytes, spans: Sequence[bytes]) -> bytes:
    """A complete `ResourceSpans.scope_spans` field from a scope and encoded span fields."""
    body = length_delimited(_SCOPE_SPANS_SCOPE, scope) + b"".join(spans)
    return length_delimited(_RESOURCE_SPANS_SCOPE_SPANS, body)


def resource_spans(resource: bytes, scope_spans_fields: Sequence[bytes]) -> bytes:
    """A complete `ExportTraceServiceRequest.resource_spans` field."""
    body = length_delimited(_RESOURCE_SPANS_RESOURCE, resource) + b"".join(scope_spans_fields)
    return length_delimited(_REQUEST_RESOURCE_SPANS, body)


def encode_request(resource: Mapping[str, Any], spans: Sequence[Span], version: str) -> bytes:
    """An ExportTraceServiceRequest for Span objects of one resource (scopes at `version`).

    The agent encodes from events (gotel.trace.assembly); this serves code that holds Span
    objects: tests, tools."""
    encoder = SpanEncoder()
    by_scope: dict[str, list[bytes]] = {}
    for span in spans:
        flags = span_flags(1 if span.sampled else 0, span.remote_parent)
        by_scope.setdefault(span.scope, []).append(
            encoder.encode(
                span.trace_id,
                span.span_id,
                span.parent_id,
                flags,
                span.name,
                span.kind,
                span.start_ns,
                span.end_ns,
                span.attributes,
                span.error,
                span.status_message,
                b"".join(encode_link(t, s) for t, s in span.links),
            )
        )
    scopes = [scope_spans(encode_scope(name, version), enc) for name, enc in by_scope.items()]
    return resource_spans(encode_resource(resource), scopes)
