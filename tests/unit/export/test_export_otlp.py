"""OTLP export over the wire into a real receiver process (tests/otlp_receiver.py)."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

import pytest

import gotel
from gotel.errors import GotelError
from gotel.export import OtlpExporter, create_exporter, span_record
from gotel.trace.resource import build_resource
from gotel.trace.span import Span, SpanKind
from otlp_receiver import Receiver

MakeSpan = Callable[..., Span]

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


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_arrive_byte_exact(
    protocol: str,
    compression: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    make_span: MakeSpan,
) -> None:
    _use(monkeypatch, receiver.otlp_env(protocol))
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
    )
    root = make_span(name="job", trace_id=trace_id, parent_span_id=bytes(8))  # all-zero parent

    exporter = create_exporter("otlp", resource=resource)
    assert isinstance(exporter, OtlpExporter)
    assert exporter.protocol == protocol
    try:
        assert exporter.export([server, client, root]) is True
    finally:
        exporter.shutdown()

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
    assert got[root.span_id.hex()]["parent_span_id"] is None
    assert got[server.span_id.hex()]["resource"]["service.name"] == "shop"
    assert got[server.span_id.hex()]["resource"]["process.pid"] == 4242


def test_int_beyond_int64_is_sent_as_string(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, make_span: MakeSpan
) -> None:
    _use(monkeypatch, receiver.otlp_env("http/protobuf"))
    span = make_span(attributes={"big": 2**64, "ok": 1})
    exporter = create_exporter("otlp", resource=_resource())
    assert exporter.export([span]) is True
    exporter.shutdown()
    [got] = receiver.spans(trace_id=span.trace_id.hex())
    assert got["attributes"] == {"big": str(2**64), "ok": 1}


def test_invalid_span_ids_are_dropped_not_the_batch(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    make_span: MakeSpan,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _use(monkeypatch, receiver.otlp_env("grpc"))
    good = make_span(name="good")
    bad = [make_span(name="short", trace_id=b"\x01" * 8), make_span(name="zero", span_id=bytes(8))]
    exporter = OtlpExporter(_resource())
    with caplog.at_level(logging.WARNING):
        assert exporter.export([*bad, good]) is True
    exporter.shutdown()
    assert exporter.invalid_spans == 2
    assert len(caplog.records) == 1  # reported once
    assert [s["name"] for s in receiver.spans(trace_id=good.trace_id.hex())] == ["good"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_collector_down_returns_false_and_logs_once(
    protocol: str,
    monkeypatch: pytest.MonkeyPatch,
    make_span: MakeSpan,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _free_port()  # closed again: nobody listens there
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")  # milliseconds
    exporter = create_exporter("otlp", resource=_resource())
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    results = [exporter.export([make_span()]) for _ in range(3)]
    elapsed = time.monotonic() - started
    exporter.shutdown()

    assert results == [False, False, False]
    assert elapsed < 5, "the timeout is 300 ms per export"
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert lines[0].levelno == logging.WARNING
    assert "export failed" in message
    assert str(port) in message
    assert "connection refused" in message.lower()  # the cause, not just "failed"
    assert exporter.failed_spans == 3


def test_http_error_status_is_the_reason(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    make_span: MakeSpan,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The signal-specific endpoint is used as is (no /v1/traces appended): a wrong path 404s.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.http_endpoint}/wrong")
    exporter = OtlpExporter(_resource())
    with caplog.at_level(logging.INFO):
        assert exporter.export([make_span()]) is False
    exporter.shutdown()
    assert len(caplog.records) == 1
    assert "HTTP 404" in caplog.records[0].getMessage()


def test_recovery_is_logged(
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    make_span: MakeSpan,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _use(monkeypatch, receiver.otlp_env("http/protobuf"))
    exporter = OtlpExporter(_resource())
    caplog.set_level(logging.INFO)

    # A failure streak that ends: force the inner exporter to fail once.
    def boom(spans: object) -> None:
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(exporter._inner, "export", boom)
        assert exporter.export([make_span()]) is False
    assert exporter.export([make_span()]) is True
    exporter.shutdown()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(messages) == 2
    assert "RuntimeError: boom" in messages[0]
    assert "recovered after 1 failed batch(es), 1 span(s) lost" in messages[1]


def test_protocol_and_timeout_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")  # signal-specific wins
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    exporter = OtlpExporter(_resource())
    assert (exporter.protocol, exporter.timeout_s) == ("grpc", 2.5)
    exporter.shutdown()


def test_default_protocol_is_http_protobuf() -> None:
    exporter = OtlpExporter(_resource())
    assert exporter.protocol == "http/protobuf"
    assert exporter.timeout_s == 10.0
    assert exporter.endpoint == "http://localhost:4318/v1/traces"
    exporter.shutdown()


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/json"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "milliseconds"),
    ],
)
def test_bad_settings_are_gotel_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(GotelError, match=fragment):
        OtlpExporter(_resource())


def test_timeout_in_seconds_by_mistake_is_warned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")
    with caplog.at_level(logging.WARNING):
        exporter = OtlpExporter(_resource())
    exporter.shutdown()
    assert exporter.timeout_s == 0.01
    assert "read as milliseconds" in caplog.text


def test_export_after_shutdown_returns_false(make_span: MakeSpan) -> None:
    exporter = OtlpExporter(_resource())
    exporter.shutdown()
    exporter.shutdown()  # idempotent
    assert exporter.export([make_span()]) is False
