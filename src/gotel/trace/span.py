"""The span gotel produces: plain data, independent of any instrumented library or exporter."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

AttributeValue = str | int | float | bool

TRACE_ID_LEN = 16
SPAN_ID_LEN = 8


class SpanKind(enum.IntEnum):
    """Span kinds, numbered as in OTLP (`opentelemetry.proto.trace.v1.Span.SpanKind`)."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class SpanData(NamedTuple):
    """What a probe says about one event: the span's name, kind, attributes and status.

    Its identity (ids, parent, flags) and its times come from the event's span fields, which
    every probe's event carries (gotel.instrumentation.events.SPAN_FIELDS)."""

    name: str
    kind: SpanKind
    attributes: dict[str, AttributeValue]
    error: bool = False
    status_message: str = ""


@dataclass(slots=True)
class Span:
    """One finished operation. Times are unix epoch nanoseconds (wall clock)."""

    name: str
    kind: SpanKind
    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes | None  # None or all-zero: a root span
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    error: bool = False
    status_message: str = ""
    scope: str = "gotel"  # instrumentation scope, e.g. "gotel/net/http"
    remote_parent: bool = False  # the parent came from another process (incoming traceparent)
    sampled: bool = True
    # Spans this one is linked to (a context it did not take as its parent): (trace, span) ids.
    links: tuple[tuple[bytes, bytes], ...] = ()

    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def is_root(self) -> bool:
        return not self.parent_span_id or not any(self.parent_span_id)

    @property
    def parent_id(self) -> bytes | None:
        """The parent span id, or None for a root span (normalises the all-zero form)."""
        return None if self.is_root else self.parent_span_id
