"""Spans, clocks and the resource: the span model, independent of any instrumented library."""

from gotel.trace.clock import BootClock
from gotel.trace.resource import build_resource, parse_resource_attributes
from gotel.trace.span import Span, SpanKind

__all__ = ["BootClock", "Span", "SpanKind", "build_resource", "parse_resource_attributes"]
