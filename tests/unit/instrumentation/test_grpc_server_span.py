"""gRPC server events -> spans: bytes laid out from the object's BTF, decoded as the agent does."""

from __future__ import annotations

import ipaddress
import time

import pytest
from probe_testing import span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.grpc.probe import SERVER, STATUS_NONE, STATUS_READ
from gotel.trace import BootClock, SpanKind


@pytest.fixture(scope="module")
def layout():
    assert SERVER.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(SERVER.bpf_object) as obj:
        yield obj.struct_layout(SERVER.event)


def event(layout, **overrides):
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    strings = {"method": "/grpc.health.v1.Health/Check", "authority": "greeter.internal:50051"}
    ips = {"peer_ip": "10.1.2.3", "local_ip": "10.9.8.7"}
    values = dict(
        start_ns=now - 3_000_000, end_ns=now, pid=9, trace_flags=1, remote_parent=0,
        status_source=STATUS_READ, status_code=0, peer_port=40001, local_port=50051,
        http2_transport=1,
        trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), parent_span_id=bytes(8),
    )
    for key in list(overrides):
        if key in strings:
            strings[key] = overrides.pop(key)
        elif key in ips:
            ips[key] = overrides.pop(key)
    values.update(overrides)
    for name, value in strings.items():
        raw = value.encode()
        values[name] = raw[: layout.fields[name].size]
        values[f"{name}_len"] = len(raw)
    for name, value in ips.items():
        raw = ipaddress.ip_address(value).packed if value else b""
        values[name] = raw
        values[f"{name}_len"] = len(raw)
    return layout.encoder()(values)


def test_layout_has_the_fields_the_decoder_needs(layout):
    for name in ("start_ns", "end_ns", "status_source", "status_code", "trace_id", "span_id",
                 "parent_span_id", "remote_parent", "method", "method_len", "authority",
                 "peer_ip", "peer_ip_len", "peer_port", "local_ip", "local_port",
                 "http2_transport"):
        assert name in layout.fields
    assert layout.fields["method"].size >= 128
    assert layout.fields["peer_ip"].size == 16


def test_full_server_span(layout):
    span = span_from(SERVER, event(layout), BootClock())
    assert span.name == "grpc.health.v1.Health/Check"
    assert span.kind == SpanKind.SERVER
    assert span.trace_id == bytes(range(1, 17))
    assert span.span_id == bytes(range(1, 9))
    assert span.parent_span_id is None  # a sampled root: nothing came in
    assert span.end_ns - span.start_ns == 3_000_000
    assert abs(span.end_ns - time.time_ns()) < 1_000_000_000
    assert span.attributes == {
        "rpc.system": "grpc",
        "rpc.service": "grpc.health.v1.Health",
        "rpc.method": "Check",
        "rpc.grpc.status_code": 0,
        "server.address": "greeter.internal",
        "server.port": 50051,
        "network.peer.address": "10.1.2.3",
        "network.peer.port": 40001,
    }
    assert not span.error
    assert span.scope == "gotel/google.golang.org/grpc"


def test_remote_parent(layout):
    span = span_from(SERVER,
        event(layout, parent_span_id=bytes(range(9, 17)), remote_parent=1), BootClock()
    )
    assert span.parent_span_id == bytes(range(9, 17))
    assert span.remote_parent


@pytest.mark.parametrize(("code", "error"), [
    (0, False), (1, False), (2, True), (3, False), (4, True), (5, False), (7, False),
    (12, True), (13, True), (14, True), (15, True), (16, False),
])
def test_server_errors_are_the_servers_fault_only(layout, code, error):
    span = span_from(SERVER, event(layout, status_code=code), BootClock())
    assert span.attributes["rpc.grpc.status_code"] == code
    assert span.error is error
    assert ("error.type" in span.attributes) is error


def test_no_status_written_means_the_client_went_away(layout):
    span = span_from(SERVER, event(layout, status_source=STATUS_NONE, status_code=0), BootClock())
    assert span.attributes["rpc.grpc.status_code"] == 1  # CANCELLED
    assert not span.error


def test_served_through_servehttp_the_status_is_unknown(layout):
    span = span_from(SERVER,
        event(layout, status_source=STATUS_NONE, http2_transport=0, authority="", local_ip="",
              peer_ip=""),
        BootClock(),
    )
    assert "rpc.grpc.status_code" not in span.attributes
    assert span.attributes["rpc.method"] == "Check"
    assert not span.error


def test_without_authority_the_local_address_names_the_server(layout):
    span = span_from(SERVER,
        event(layout, authority="", local_ip="::ffff:127.0.0.1", peer_ip="::1"), BootClock()
    )
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == 50051
    assert span.attributes["network.peer.address"] == "::1"


def test_unknown_addresses_are_left_out(layout):
    span = span_from(SERVER, event(layout, authority="", local_ip="", peer_ip=""), BootClock())
    for key in ("server.address", "server.port", "network.peer.address", "network.peer.port"):
        assert key not in span.attributes


@pytest.mark.parametrize(("method", "name", "service", "rpc_method"), [
    ("/helloworld.Greeter/SayHello", "helloworld.Greeter/SayHello", "helloworld.Greeter",
     "SayHello"),
    ("/Svc/M", "Svc/M", "Svc", "M"),
    ("/a.b.c.D/E", "a.b.c.D/E", "a.b.c.D", "E"),
    ("nonsense", "nonsense", None, None),
    ("", "grpc", None, None),
])
def test_span_name_is_the_full_method_without_its_slash(layout, method, name, service,
                                                         rpc_method):
    span = span_from(SERVER, event(layout, method=method), BootClock())
    assert span.name == name
    assert span.attributes.get("rpc.service") == service
    assert span.attributes.get("rpc.method") == rpc_method
