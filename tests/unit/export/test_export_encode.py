"""gotel's OTLP encoder against the OpenTelemetry Python SDK's: the same spans, decoded.

The SDK path (Span -> ReadableSpan -> the SDK's protobuf encoder) is what gotel used before
it encoded spans itself; both requests are decoded with opentelemetry-proto and compared
field by field. gotel's own decoder (what console and jsonl print) must read its requests
back to the spans that went in.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace import SpanKind as OtelSpanKind
from opentelemetry.trace.status import Status, StatusCode

import gotel
from gotel.export.otlp_decode import decode_request
from gotel.export.otlp_encode import AttributeEncoder, encode_request, key_value
from gotel.export.protobuf import DecodeError, varint
from gotel.trace.span import Span, SpanKind

MakeSpan = Callable[..., Span]

EVERY_TYPE = {
    "http.request.method": "GET",
    "url.path": "/users/42",
    "user_agent.original": "curl/8 ünïcode ✓",
    "empty": "",
    "long": "x" * 300,  # a length that needs a two-byte varint
    "http.response.status_code": 200,
    "zero": 0,
    "negative": -7,
    "int64.max": 2**63 - 1,
    "int64.min": -(2**63),
    "ratio": 0.1,
    "tiny": -1.5e-300,
    "flag.true": True,
    "flag.false": False,
    "list": ["a", "b"],
}
RESOURCE = {"service.name": "shop", "process.pid": 4242, "process.runtime.version": "go1.26.8"}


def sdk_request(spans: list[Span]) -> bytes:
    """What the SDK's exporter would have sent for these spans (gotel's former path)."""
    resource = Resource(dict(RESOURCE))
    scopes: dict[str, InstrumentationScope] = {}
    readable = []
    for span in spans:
        scope = scopes.setdefault(span.scope, InstrumentationScope(span.scope, gotel.__version__))
        flags = TraceFlags(TraceFlags.SAMPLED if span.sampled else TraceFlags.DEFAULT)
        trace_id = int.from_bytes(span.trace_id, "big")
        context = SpanContext(trace_id, int.from_bytes(span.span_id, "big"), False, flags)
        parent = None
        if span.parent_id is not None:
            parent = SpanContext(
                trace_id, int.from_bytes(span.parent_id, "big"), span.remote_parent, flags
            )
        status = (
            Status(StatusCode.ERROR, span.status_message or None)
            if span.error
            else Status(StatusCode.UNSET)
        )
        readable.append(
            ReadableSpan(
                name=span.name,
                context=context,
                parent=parent,
                resource=resource,
                attributes=dict(span.attributes),
                kind=OtelSpanKind[span.kind.name],
                status=status,
                start_time=span.start_ns,
                end_time=span.end_ns,
                instrumentation_scope=scope,
            )
        )
    return encode_spans(readable).SerializeToString()


def _spans(make_span: MakeSpan) -> list[Span]:
    trace_id = b"\x00\x00\x00\x01" + os.urandom(12)
    server = make_span(
        name="GET /users/{id}",
        kind=SpanKind.SERVER,
        trace_id=trace_id,
        span_id=b"\x00" + os.urandom(7),
        parent_span_id=os.urandom(8),
        remote_parent=True,
        attributes=dict(EVERY_TYPE),
        scope="gotel/net/http",
    )
    client = make_span(
        name="GET",
        kind=SpanKind.CLIENT,
        trace_id=trace_id,
        parent_span_id=server.span_id,
        attributes={"url.full": "http://db:8080/q", "error.type": "500"},
        error=True,
        status_message="internal: ✗",
        scope="gotel/net/http",
    )
    bare_error = make_span(name="rpc", kind=SpanKind.CLIENT, error=True, scope="gotel/grpc")
    root = make_span(name="job", parent_span_id=None, scope="gotel/grpc")
    return [server, client, bare_error, root]


def _normalised(request: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest.FromString(request)
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                # The SDK leaves the W3C trace flags out of Span.flags; gotel writes them
                # (the field's low byte, per trace.proto). Compared separately below.
                span.flags &= ~0xFF
                if span.status.code == 0:
                    span.ClearField("status")  # UNSET: the SDK writes it empty, gotel omits it
    return message


def test_encoder_output_decodes_to_what_the_sdk_sends(make_span: MakeSpan) -> None:
    spans = _spans(make_span)
    ours = encode_request(RESOURCE, spans, gotel.__version__)
    theirs = sdk_request(spans)
    assert _normalised(ours) == _normalised(theirs)
    # Every span of ours carries the sampled flag and says whether its parent is remote.
    decoded = ExportTraceServiceRequest.FromString(ours)
    flags = [s.flags for rs in decoded.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert flags == [0x301, 0x101, 0x101, 0x101]


def test_own_decoder_reads_back_the_spans(make_span: MakeSpan) -> None:
    spans = _spans(make_span)
    [(resource, decoded)] = decode_request(encode_request(RESOURCE, spans, gotel.__version__))
    assert resource == RESOURCE
    assert decoded == spans  # every field: ids, times, attributes, status, scope, flags


def test_attribute_cache_gives_the_same_bytes_and_forgets_high_cardinality_keys() -> None:
    encoder = AttributeEncoder(limit=4)
    for i in range(50):
        attributes = {"method": "GET", "path": f"/item/{i}", "status": 200 + i % 2}
        expected = b"".join(key_value(b"\x4a", k, v) for k, v in attributes.items())
        assert encoder.encode(attributes) == expected
    cache = encoder._cache
    assert cache["path"] is None  # more than 4 distinct values: no longer cached
    assert set(cache["method"]) == {"GET"} and set(cache["status"]) == {200, 201}
    # True == 1 in Python: a cache keyed by value would send a bool as an int.
    assert encoder.encode({"status": True}) == key_value(b"\x4a", "status", True)


def test_strings_that_are_not_utf8_safe_do_not_fail_the_batch(make_span: MakeSpan) -> None:
    span = make_span(name="bad \ud800 name", attributes={"k": "lone \udfff surrogate"})
    [(_, [decoded])] = decode_request(encode_request(RESOURCE, [span], gotel.__version__))
    assert decoded.name == "bad ? name"
    assert decoded.attributes == {"k": "lone ? surrogate"}


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -(2**63)])
def test_varints_match_protobuf(value: int) -> None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    assert AnyValue(int_value=value).SerializeToString() == b"\x18" + varint(value)


def test_truncated_input_is_a_decode_error() -> None:
    request = encode_request(RESOURCE, [], gotel.__version__)
    with pytest.raises(DecodeError):
        decode_request(request[:-3])
