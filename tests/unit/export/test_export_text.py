"""The console and jsonl exporters, and create_exporter."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gotel.errors import GotelError
from gotel.export import (
    ConsoleExporter,
    JsonLinesExporter,
    NoneExporter,
    SpanExporter,
    create_exporter,
)
from gotel.trace.span import Span, SpanKind

MakeSpan = Callable[..., Span]
Encode = Callable[..., bytes]
RESOURCE = {"service.name": "shop", "process.pid": 4242}  # as conftest's encode() uses
JSONL_KEYS = {
    "name",
    "kind",
    "trace_id",
    "span_id",
    "parent_span_id",
    "remote_parent",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "duration_ns",
    "attributes",
    "status",
    "resource",
    "scope",
}


def _pair(make_span: MakeSpan) -> tuple[Span, Span]:
    parent = make_span(
        name="GET /users/{id}",
        kind=SpanKind.SERVER,
        attributes={"http.response.status_code": 500, "url.path": "/users/7", "ok": False},
        error=True,
        status_message="internal error",
        scope="gotel/net/http",
    )
    child = make_span(
        name="SELECT shop.users",
        kind=SpanKind.CLIENT,
        trace_id=parent.trace_id,
        parent_span_id=parent.span_id,
        attributes={"db.system.name": "postgresql", "ratio": 0.25},
    )
    return parent, child


def test_jsonl_to_file(tmp_path: Path, make_span: MakeSpan, encode: Encode) -> None:
    out = tmp_path / "spans.jsonl"
    parent, child = _pair(make_span)
    exporter = create_exporter("jsonl", output=str(out))
    assert exporter.export(encode([parent]), 1).ok
    assert exporter.export(encode([child]), 1).ok
    exporter.shutdown()

    lines = out.read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == JSONL_KEYS
    assert first == {
        "name": "GET /users/{id}",
        "kind": "SERVER",
        "trace_id": parent.trace_id.hex(),
        "span_id": parent.span_id.hex(),
        "parent_span_id": None,
        "remote_parent": False,
        "start_time_unix_nano": parent.start_ns,
        "end_time_unix_nano": parent.end_ns,
        "duration_ns": 1_500_000,
        "attributes": {"http.response.status_code": 500, "url.path": "/users/7", "ok": False},
        "status": {"code": "ERROR", "message": "internal error"},
        "resource": RESOURCE,
        "scope": "gotel/net/http",
    }
    assert second["kind"] == "CLIENT"
    assert second["parent_span_id"] == parent.span_id.hex()
    assert second["status"] == {"code": "UNSET", "message": ""}
    assert second["attributes"] == {"db.system.name": "postgresql", "ratio": 0.25}


def test_jsonl_appends(tmp_path: Path, make_span: MakeSpan, encode: Encode) -> None:
    out = tmp_path / "spans.jsonl"
    for _ in range(2):
        exporter = create_exporter("jsonl", output=str(out))
        exporter.export(encode([make_span()]), 1)
        exporter.shutdown()
    assert len(out.read_text().splitlines()) == 2


def test_jsonl_to_stdout(
    capsys: pytest.CaptureFixture[str], make_span: MakeSpan, encode: Encode
) -> None:
    exporter = create_exporter("jsonl")
    exporter.export(encode([make_span(name="a"), make_span(name="b")]), 2)
    exporter.shutdown()
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in records] == ["a", "b"]


def test_jsonl_unwritable_output_is_a_gotel_error(tmp_path: Path) -> None:
    with pytest.raises(GotelError, match="cannot open"):
        create_exporter("jsonl", output=str(tmp_path / "missing" / "x.jsonl"))


def test_console_is_readable(make_span: MakeSpan, encode: Encode) -> None:
    stream = io.StringIO()
    parent, child = _pair(make_span)
    exporter = create_exporter("console", stream=stream)
    assert exporter.export(encode([parent, child]), 2).ok
    exporter.shutdown()
    text = stream.getvalue()
    first, second = text.strip().split("\n\n")
    assert first.splitlines()[0] == "GET /users/{id}  SERVER  1.500 ms  [gotel/net/http]"
    assert parent.trace_id.hex() in first and parent.span_id.hex() in first
    assert "status ERROR: internal error" in first
    attribute_lines = [line.split("=")[0].strip() for line in first.splitlines()[4:]]
    assert (
        attribute_lines
        == sorted(attribute_lines)
        == [
            "http.response.status_code",
            "ok",
            "url.path",
        ]
    )
    assert "ok                        = false" in first
    assert 'url.path                  = "/users/7"' in first
    assert f"parent {parent.span_id.hex()}" in second
    assert 'db.system.name = "postgresql"' in second


class _BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("reader went away")


def test_write_failure_is_a_result_not_a_raise(make_span: MakeSpan, encode: Encode) -> None:
    exporter = ConsoleExporter(_BrokenStream())
    result = exporter.export(encode([make_span()]), 1)
    assert not result.ok and not result.retryable
    assert "BrokenPipeError: reader went away" in result.reason


def test_factory_kinds(tmp_path: Path) -> None:
    assert isinstance(create_exporter(" None "), NoneExporter)
    assert isinstance(create_exporter("console"), ConsoleExporter)
    jsonl = create_exporter("JSONL", output=str(tmp_path / "x"))
    assert isinstance(jsonl, JsonLinesExporter)
    jsonl.shutdown()
    for exporter in (NoneExporter(), jsonl):
        assert isinstance(exporter, SpanExporter)


def test_factory_unknown_kind() -> None:
    with pytest.raises(GotelError) as raised:
        create_exporter("zipkin")
    assert str(raised.value) == "unknown exporter 'zipkin' (expected otlp, console, jsonl or none)"
