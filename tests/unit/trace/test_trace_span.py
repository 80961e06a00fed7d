"""The Span model."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from gotel.trace import Span, SpanKind


def _span(parent: bytes | None) -> Span:
    return Span(
        name="op",
        kind=SpanKind.SERVER,
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        parent_span_id=parent,
        start_ns=1_000,
        end_ns=3_500,
    )


@pytest.mark.parametrize("kind", list(SpanKind))
def test_kinds_are_numbered_as_in_otlp(kind: SpanKind) -> None:
    assert ProtoSpan.SpanKind.Value(f"SPAN_KIND_{kind.name}") == kind


def test_duration() -> None:
    assert _span(None).duration_ns() == 2_500


@pytest.mark.parametrize(
    ("parent", "is_root", "parent_id"),
    [
        (None, True, None),
        (bytes(8), True, None),
        (b"\x00" * 7 + b"\x01", False, b"\x00" * 7 + b"\x01"),
    ],
)
def test_root_detection(parent: bytes | None, is_root: bool, parent_id: bytes | None) -> None:
    span = _span(parent)
    assert span.is_root is is_root
    assert span.parent_id == parent_id


def test_defaults_and_slots() -> None:
    span = _span(None)
    assert (span.error, span.status_message, span.scope) == (False, "", "gotel")
    assert (span.remote_parent, span.sampled, span.attributes) == (False, True, {})
    with pytest.raises(AttributeError):
        span.unknown = 1  # type: ignore[attr-defined]
