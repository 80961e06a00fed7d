"""Spans, clocks and the resource: the span model, independent of any instrumented library."""

from gotel.trace.clock import BootClock
from gotel.trace.resource import build_resource, parse_resource_attributes
from gotel.trace.span import Span, SpanData, SpanKind

__all__ = [
    "BootClock",
    "Span",
    "SpanData",
    "SpanKind",
    "build_resource",
    "parse_resource_attributes",
]
