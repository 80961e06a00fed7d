"""The flat, JSON-ready form of a span shared by the jsonl exporter and the test receiver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gotel.trace.span import Span


def status_record(span: Span) -> dict[str, str]:
    # gotel only ever sets ERROR; OK is reserved for applications overriding a status.
    if span.error:
        return {"code": "ERROR", "message": span.status_message}
    return {"code": "UNSET", "message": ""}


def span_record(span: Span, resource: Mapping[str, Any]) -> dict[str, Any]:
    """`links` only when the span has some."""
    parent = span.parent_id
    record: dict[str, Any] = {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": parent.hex() if parent is not None else None,
        "remote_parent": span.remote_parent,
        "start_time_unix_nano": span.start_ns,
        "end_time_unix_nano": span.end_ns,
        "duration_ns": span.duration_ns(),
        "attributes": dict(span.attributes),
        "status": status_record(span),
        "resource": dict(resource),
        "scope": span.scope,
    }
    if span.links:
        record["links"] = [{"trace_id": t.hex(), "span_id": s.hex()} for t, s in span.links]
    return record
