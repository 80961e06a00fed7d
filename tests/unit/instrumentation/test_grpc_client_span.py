"""gRPC client events -> spans: status codes and messages, targets, parents."""

from __future__ import annotations

import time

import pytest
from probe_testing import span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.grpc.probe import (
    CALL_STREAM,
    CALL_UNARY,
    CLIENT,
    STATUS_NOT_STATUS,
    STATUS_OK,
    STATUS_READ,
)
from gotel.instrumentation.grpc.semconv import target_address
from gotel.trace import BootClock, SpanKind


@pytest.fixture(scope="module")
def layout():
    assert CLIENT.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(CLIENT.bpf_object) as obj:
        yield obj.struct_layout(CLIENT.event)


def event(layout, **overrides):
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    strings = {"method": "/grpc.health.v1.Health/Check", "target": "127.0.0.1:50051",
               "message": ""}
    values = dict(
        start_ns=now - 2_000_000, end_ns=now, error_type=0, pid=7, trace_flags=1,
        kind=CALL_UNARY, status_source=STATUS_OK, status_code=0,
        trace_id=bytes(range(16, 32)), span_id=bytes(range(8, 16)),
        parent_span_id=bytes(range(1, 9)),
    )
    for key in list(overrides):
        if key in strings:
            strings[key] = overrides.pop(key)
    values.update(overrides)
    for name, value in strings.items():
        raw = value.encode()
        values[name] = raw[: layout.fields[name].size]
        values[f"{name}_len"] = len(raw)
    return layout.encoder()(values)


def test_client_span(layout):
    span = span_from(CLIENT, event(layout), BootClock())
    assert span.name == "grpc.health.v1.Health/Check"
    assert span.kind == SpanKind.CLIENT
    assert span.parent_span_id == bytes(range(1, 9))
    assert span.end_ns - span.start_ns == 2_000_000
    assert span.attributes == {
        "rpc.system": "grpc",
        "rpc.service": "grpc.health.v1.Health",
        "rpc.method": "Check",
        "rpc.grpc.status_code": 0,
        "server.address": "127.0.0.1",
        "server.port": 50051,
    }
    assert not span.error
    assert span.status_message == ""


def test_stream_span_reads_the_same(layout):
    span = span_from(CLIENT,
        event(layout, kind=CALL_STREAM, method="/grpc.health.v1.Health/Watch"), BootClock()
    )
    assert span.name == "grpc.health.v1.Health/Watch"
    assert span.attributes["rpc.method"] == "Watch"
    assert not span.error


@pytest.mark.parametrize("code", range(1, 17))
def test_any_non_ok_code_is_an_error_with_its_message(layout, code):
    span = span_from(CLIENT,
        event(layout, status_source=STATUS_READ, status_code=code, error_type=0x7F0010,
              message="it broke"),
        BootClock(),
    )
    assert span.error
    assert span.attributes["rpc.grpc.status_code"] == code
    assert span.status_message == "it broke"
    assert span.attributes["error.type"].isupper()


def test_an_error_without_a_status_is_unknown(layout):
    span = span_from(CLIENT,
        event(layout, status_source=STATUS_NOT_STATUS, error_type=0x7F0010), BootClock()
    )
    assert span.error
    assert span.attributes["rpc.grpc.status_code"] == 2
    assert span.attributes["error.type"] == "_OTHER"
    assert span.status_message == "UNKNOWN"


def test_root_client_span(layout):
    span = span_from(CLIENT, event(layout, parent_span_id=bytes(8)), BootClock())
    assert span.parent_span_id is None


@pytest.mark.parametrize(("target", "address", "port"), [
    ("127.0.0.1:50051", "127.0.0.1", 50051),
    ("greeter.internal:443", "greeter.internal", 443),
    ("dns:///greeter.internal:8443", "greeter.internal", 8443),
    ("dns://8.8.8.8:53/greeter.internal:8443", "greeter.internal", 8443),
    ("passthrough:///10.0.0.1:9000", "10.0.0.1", 9000),
    ("[::1]:50051", "::1", 50051),
    ("unix:///run/greeter.sock", "/run/greeter.sock", None),
    ("unix:relative.sock", "relative.sock", None),
    ("greeter", "greeter", None),
])
def test_target_address(target, address, port):
    assert target_address(target) == (address, port)


def test_target_becomes_server_address(layout):
    span = span_from(CLIENT, event(layout, target="dns:///api.example.com:443"), BootClock())
    assert span.attributes["server.address"] == "api.example.com"
    assert span.attributes["server.port"] == 443
