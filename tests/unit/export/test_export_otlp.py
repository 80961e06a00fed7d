"""OTLP export over the wire into a real receiver process (tests/otlp_receiver.py)."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

import gotel
from gotel.errors import GotelError
from gotel.export import OtlpExporter, create_exporter, span_record
from gotel.export.otlp import parse_response
from gotel.export.otlp_config import parse_headers, resolve_settings
from gotel.trace.resource import build_resource
from gotel.trace.span import Span, SpanKind
from otlp_receiver import Receiver

MakeSpan = Callable[..., Span]
Encode = Callable[..., bytes]

EVERY_TYPE = {
    "http.request.method": "GET",
    "url.path": "/users/42",
    "user_agent.original": "curl/8 ünïcode ✓",
    "empty": "",
    "http.response.status_code": 200,
    "negative": -7,
    "int64.max": 2**63 - 1,
    "int64.min": -(2**63),
    "ratio": 0.1,
    "tiny": -1.5e-300,
    "flag.true": True,
    "flag.false": False,
}


def _resource() -> dict[str, str | int]:
    return build_resource(
        executable="/srv/bin/shop", pid=4242, go_version="go1.26.8", extra={}, environ={}
    )


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _expected(span, resource, transport: str) -> dict:
    return {
        **span_record(span, resource),
        "transport": transport,
        "scope_version": gotel.__version__,
    }


@pytest.mark.parametrize("compression", ["none", "gzip", "adaptive"])
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_arrive_byte_exact(
    protocol: str,
    compression: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    make_span: MakeSpan,
    encode: Encode,
) -> None:
    _use(monkeypatch, receiver.otlp_env(protocol))
    if compression != "adaptive":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    resource = _resource()
    # Leading zero bytes: an int round trip that drops them would show here.
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
        start_ns=server.start_ns + 100_000,
        end_ns=server.end_ns - 100_000,
        attributes={"url.full": "http://db:8080/q", "error.type": "connection reset"},
        error=True,
        status_message="connection reset by peer",
        scope="gotel/net/http/client",
        links=((os.urandom(16), os.urandom(8)),),  # e.g. a consumer's producer
    )
    root = make_span(name="job", trace_id=trace_id, parent_span_id=bytes(8))  # all-zero parent

    exporter = create_exporter("otlp")
    assert isinstance(exporter, OtlpExporter)
    assert exporter.protocol == protocol
    try:
        # behind=True: under "adaptive" the exporter compresses, as when the queue backs up.
        result = exporter.export(encode([server, client, root], resource), 3, behind=True)
    finally:
        exporter.shutdown()
    assert result.ok, result.reason

    transport = "grpc" if protocol == "grpc" else "http"
    got = {s["span_id"]: s for s in receiver.spans(wait_for=3, trace_id=trace_id.hex())}
    assert len(got) == 3
    for span in (server, client, root):
        assert got[span.span_id.hex()] == _expected(span, resource, transport)
    # Spelled out, what the comparison above covers:
    assert got[server.span_id.hex()]["remote_parent"] is True
    assert got[client.span_id.hex()]["status"] == {
        "code": "ERROR",
        "message": "connection reset by peer",
    }
    assert got[client.span_id.hex()]["parent_span_id"] == server.span_id.hex()
    [(link_trace, link_span)] = client.links
    assert got[client.span_id.hex()]["links"] == [
        {"trace_id": link_trace.hex(), "span_id": link_span.hex()}]
    assert "links" not in got[server.span_id.hex()]
    assert got[root.span_id.hex()]["parent_span_id"] is None
    assert got[server.span_id.hex()]["resource"]["service.name"] == "shop"
    assert got[server.span_id.hex()]["resource"]["process.pid"] == 4242


def test_int_beyond_int64_is_sent_as_string(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, make_span: MakeSpan, encode: Encode
) -> None:
    _use(monkeypatch, receiver.otlp_env("http/protobuf"))
    span = make_span(attributes={"big": 2**64, "ok": 1})
    exporter = create_exporter("otlp")
    assert exporter.export(encode([span]), 1).ok
    exporter.shutdown()
    [got] = receiver.spans(trace_id=span.trace_id.hex())
    assert got["attributes"] == {"big": str(2**64), "ok": 1}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_collector_down_is_a_retryable_result_with_its_cause(
    protocol: str, monkeypatch: pytest.MonkeyPatch, make_span: MakeSpan, encode: Encode
) -> None:
    port = _free_port()  # closed again: nobody listens there
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")  # milliseconds
    exporter = create_exporter("otlp")
    started = time.monotonic()
    results = [exporter.export(encode([make_span()]), 1) for _ in range(3)]
    elapsed = time.monotonic() - started
    exporter.shutdown()

    assert elapsed < 5, "the timeout is 300 ms per export"
    for result in results:
        assert not result.ok and result.retryable
        text = result.reason.lower()
        assert "refused" in text or "unavailable" in text, result.reason


def test_http_error_status_is_the_reason_and_not_retried(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, make_span: MakeSpan, encode: Encode
) -> None:
    # The signal-specific endpoint is used as is (no /v1/traces appended): a wrong path 404s.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.http_endpoint}/wrong")
    exporter = OtlpExporter()
    result = exporter.export(encode([make_span()]), 1)
    exporter.shutdown()
    assert not result.ok and not result.retryable
    assert result.reason.startswith("HTTP 404")


def test_partial_success_is_read() -> None:
    answer = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=3, error_message="too old")
    ).SerializeToString()
    assert parse_response(answer) == (3, "too old")
    assert parse_response(b"") == (0, "")
    assert parse_response(b"\xff") == (0, "")  # garbage is not a partial success


def test_protocol_and_timeout_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")  # signal-specific wins
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    exporter = OtlpExporter()
    assert (exporter.protocol, exporter.settings.timeout_s) == ("grpc", 2.5)
    exporter.shutdown()


def test_defaults() -> None:
    exporter = OtlpExporter()
    assert exporter.protocol == "http/protobuf"
    assert exporter.settings.timeout_s == 10.0
    assert exporter.endpoint == "http://localhost:4318/v1/traces"
    assert exporter.settings.compression == "adaptive"
    exporter.shutdown()
    grpc = resolve_settings({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert (grpc.endpoint, grpc.insecure) == ("http://localhost:4317", True)


def test_endpoints_and_tls_as_the_specification_says() -> None:
    http = resolve_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/"})
    assert http.endpoint == "https://collector:4318/v1/traces" and http.tls
    signal = resolve_settings(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:9999/custom",
        }
    )
    assert signal.endpoint == "http://collector:9999/custom" and not signal.tls
    bare = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}
    assert resolve_settings(bare).tls  # a bare host:port is TLS unless told otherwise
    bare["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    assert not resolve_settings(bare).tls


def test_headers_are_parsed_and_checked() -> None:
    raw = "api-key=s%3Dcret, X-Tenant = blue ,"
    assert parse_headers(raw, "V") == {"api-key": "s=cret", "x-tenant": "blue"}
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=2", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=3"}
    assert resolve_settings(env).headers == {"a": "1", "b": "3"}
    for bad in ("novalue", "=x", "a b=1", "k=line%0Abreak"):
        with pytest.raises(GotelError, match="OTEL_EXPORTER_OTLP_HEADERS"):
            resolve_settings({"OTEL_EXPORTER_OTLP_HEADERS": bad})


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/json"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector", "http"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:port", "http"),
    ],
)
def test_bad_settings_are_gotel_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(GotelError, match=fragment):
        OtlpExporter()


def test_timeout_in_seconds_by_mistake_is_warned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")
    with caplog.at_level(logging.WARNING):
        exporter = OtlpExporter()
    exporter.shutdown()
    assert exporter.settings.timeout_s == 0.01
    assert "read as milliseconds" in caplog.text


def test_export_after_shutdown_is_a_failure(make_span: MakeSpan, encode: Encode) -> None:
    exporter = OtlpExporter()
    exporter.shutdown()
    exporter.shutdown()  # idempotent
    assert not exporter.export(encode([make_span()]), 1).ok
