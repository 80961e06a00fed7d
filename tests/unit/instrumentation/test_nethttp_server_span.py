"""Server events -> spans: bytes laid out from the object's BTF, decoded as the agent does."""

from __future__ import annotations

import struct
import time

import pytest
from probe_testing import span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.nethttp.probe import SERVER
from gotel.instrumentation.nethttp.semconv import route_from_pattern
from gotel.trace import BootClock, SpanKind


@pytest.fixture(scope="module")
def layout():
    assert SERVER.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(SERVER.bpf_object) as obj:
        yield obj.struct_layout(SERVER.event)


def pack(layout, **values) -> bytes:
    buf = bytearray(layout.size)
    for name, value in values.items():
        f = layout.fields[name]
        if isinstance(value, bytes | str):
            raw = value.encode() if isinstance(value, str) else value
            raw = raw[: f.size]
            buf[f.offset : f.offset + len(raw)] = raw
            if f"{name}_len" in layout.fields and isinstance(value, str):
                lf = layout.fields[f"{name}_len"]
                struct.pack_into("<I", buf, lf.offset, len(value.encode()))
        else:
            buf[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little")
    return bytes(buf)


def event(layout, **overrides):
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    values = dict(
        start_ns=now - 5_000_000, end_ns=now, status=0, proto_major=1, proto_minor=1, pid=42,
        tls=0, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), method="GET",
        path="/hello/x", query="", route="GET /hello/{id}", host="example.com:8080",
        remote_addr="10.1.2.3:5555",
    )
    values.update(overrides)
    return pack(layout, **values)


def test_layout_has_the_fields_the_decoder_needs(layout):
    for name in ("start_ns", "end_ns", "status", "trace_id", "span_id", "method", "path",
                 "route", "host", "remote_addr", "method_len", "path_len"):
        assert name in layout.fields
    assert layout.fields["path"].size >= 256


def test_full_server_span(layout):
    clock = BootClock()
    span = span_from(SERVER, event(layout, query="a=1"), clock)
    assert span.name == "GET /hello/{id}"
    assert span.kind == SpanKind.SERVER
    assert span.trace_id == bytes(range(1, 17))
    assert span.span_id == bytes(range(1, 9))
    assert span.parent_span_id is None
    assert span.end_ns - span.start_ns == 5_000_000
    assert abs(span.end_ns - time.time_ns()) < 1_000_000_000
    assert span.attributes == {
        "http.request.method": "GET",
        "url.path": "/hello/x",
        "url.query": "a=1",
        "url.scheme": "http",
        "http.route": "/hello/{id}",
        "http.response.status_code": 200,
        "server.address": "example.com",
        "server.port": 8080,
        "network.peer.address": "10.1.2.3",
        "network.peer.port": 5555,
        "client.address": "10.1.2.3",
        "network.protocol.version": "1.1",
    }
    assert not span.error


def test_error_only_for_5xx_and_other_methods(layout):
    clock = BootClock()
    assert span_from(SERVER, event(layout, status=503), clock).error
    assert span_from(SERVER, event(layout, status=503), clock).attributes["error.type"] == "503"
    assert not span_from(SERVER, event(layout, status=404), clock).error
    other = span_from(SERVER, event(layout, method="PURGE", route=""), clock)
    assert other.name == "HTTP"
    assert other.attributes["http.request.method"] == "_OTHER"
    assert other.attributes["http.request.method_original"] == "PURGE"


def test_truncation_is_reported(layout):
    long_path = "/" + "p" * 400
    span = span_from(SERVER, event(layout, path=long_path), BootClock())
    assert span.attributes["url.path"] == long_path[: layout.fields["path"].size]
    assert span.attributes["gotel.truncated"] == "url.path"


def test_http2_and_tls(layout):
    span = span_from(SERVER, event(layout, proto_major=2, proto_minor=0, tls=1), BootClock())
    assert span.attributes["network.protocol.version"] == "2"
    assert span.attributes["url.scheme"] == "https"


@pytest.mark.parametrize(
    ("pattern", "route"),
    [("GET /hello/{id}", "/hello/{id}"), ("/items/", "/items/"),
     ("example.com/x", "/x"), ("POST example.com/y/{z...}", "/y/{z...}"), ("", "")],
)
def test_route_from_pattern(pattern, route):
    assert route_from_pattern(pattern) == route
