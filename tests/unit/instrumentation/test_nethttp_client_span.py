"""Client events -> spans: url.full without secrets, error rules, parents."""

from __future__ import annotations

import time

import pytest
from probe_testing import span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.nethttp.probe import CLIENT
from gotel.instrumentation.nethttp.semconv import redact_query
from gotel.trace import BootClock, SpanKind


@pytest.fixture(scope="module")
def layout():
    assert CLIENT.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(CLIENT.bpf_object) as obj:
        yield obj.struct_layout(CLIENT.event)


def event(layout, **overrides):
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    strings = {"method": "GET", "scheme": "http", "host": "api.internal:8080",
               "path": "/v1/items", "query": ""}
    values = dict(
        start_ns=now - 2_000_000, end_ns=now, status=200, proto_major=1, proto_minor=1,
        error_type=0, pid=7, trace_flags=1, trace_id=bytes(range(16, 32)),
        span_id=bytes(range(8, 16)), parent_span_id=bytes(range(1, 9)), has_userinfo=0,
    )
    for key in list(overrides):
        if key in strings:
            strings[key] = overrides.pop(key)
    values.update(overrides)
    for name, value in strings.items():
        raw = value.encode()
        values[name] = raw
        values[f"{name}_len"] = len(raw)
    return layout.encoder()(values)


def test_client_span(layout):
    span = span_from(CLIENT, event(layout, query="page=2"), BootClock())
    assert span.name == "GET"
    assert span.kind == SpanKind.CLIENT
    assert span.parent_span_id == bytes(range(1, 9))
    assert span.attributes == {
        "http.request.method": "GET",
        "url.full": "http://api.internal:8080/v1/items?page=2",
        "server.address": "api.internal",
        "server.port": 8080,
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert not span.error


def test_userinfo_never_and_secrets_redacted(layout):
    span = span_from(CLIENT,
        event(layout, has_userinfo=1, host="example.com", scheme="https",
              query="token=abc&x=1&Signature=zz"),
        BootClock(),
    )
    assert span.attributes["url.full"] == (
        "https://example.com/v1/items?token=REDACTED&x=1&Signature=REDACTED"
    )
    assert span.attributes["server.port"] == 443


@pytest.mark.parametrize(("status", "error_type", "error", "etype"), [
    (200, 0, False, None), (404, 0, True, "404"), (503, 0, True, "503"),
    (0, 0x7F00AA, True, "_OTHER"),
])
def test_error_rules(layout, status, error_type, error, etype):
    span = span_from(CLIENT, event(layout, status=status, error_type=error_type), BootClock())
    assert span.error is error
    assert span.attributes.get("error.type") == etype
    if not status:
        assert "http.response.status_code" not in span.attributes


def test_redact_query_keeps_everything_else():
    assert redact_query("a=1&b&api_key=s3cr3t&sig=") == "a=1&b&api_key=REDACTED&sig=REDACTED"
