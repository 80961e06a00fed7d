"""Events -> spans: a probe's description of each event plus the event's span fields.

The fast path encodes each span straight into OTLP bytes (SpanAssembler.encode); `span_of`
builds the same span as a plain Span object, for tests and anything that wants to look at one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from gotel.export.otlp_encode import SpanEncoder, encode_link, span_flags
from gotel.trace.clock import BootClock
from gotel.trace.span import Span, SpanData

log = logging.getLogger(__name__)

Event = dict[str, Any]
Describe = Callable[[Event], SpanData | None]

_NO_TRACE = bytes(16)
_NO_SPAN = bytes(8)


def event_links(event: Mapping[str, Any]) -> tuple[tuple[bytes, bytes], ...]:
    """The link an event carries in its optional link_trace_id/link_span_id (zero: none)."""
    span_id = event.get("link_span_id")
    if span_id is None or span_id == _NO_SPAN or event["link_trace_id"] == _NO_TRACE:
        return ()
    return ((bytes(event["link_trace_id"]), bytes(span_id)),)


class SpanAssembler:
    """Encodes one probe's events as OTLP spans; counts what it cannot turn into one."""

    def __init__(self, name: str, describe: Describe, clock: BootClock) -> None:
        self.name = name  # the probe's, for log lines
        self._describe = describe
        self._clock = clock
        self._encoder = SpanEncoder()
        self.undecodable = 0  # events describe() failed on (a probe bug or a torn read)
        self.invalid = 0  # events whose trace or span id is all zero

    def describe(self, events: list[Event]) -> list[tuple[Event, SpanData]]:
        """The events that make spans, with what the probe says of each."""
        describe = self._describe
        out: list[tuple[Event, SpanData]] = []
        append = out.append
        for event in events:
            try:
                data = describe(event)
            except (ValueError, KeyError, TypeError, UnicodeError) as exc:
                self.undecodable += 1
                if self.undecodable == 1:
                    log.warning("%s: undecodable event dropped: %s (reported once)", self.name, exc)
                continue
            if data is not None:
                append((event, data))
        return out

    def encode(self, described: list[tuple[Event, SpanData]]) -> list[bytes]:
        """ScopeSpans.spans fields for described events, in order."""
        encode = self._encoder.encode
        offset = self._clock.offset_ns
        out: list[bytes] = []
        append = out.append
        for event, data in described:
            trace_id, span_id = event["trace_id"], event["span_id"]
            if trace_id == _NO_TRACE or span_id == _NO_SPAN:
                self.invalid += 1
                continue
            parent = event["parent_span_id"]
            links = event_links(event)
            append(
                encode(
                    trace_id,
                    span_id,
                    None if parent == _NO_SPAN else parent,
                    span_flags(event["trace_flags"], event.get("remote_parent", 0)),
                    data.name,
                    data.kind,
                    event["start_ns"] + offset,
                    event["end_ns"] + offset,
                    data.attributes,
                    data.error,
                    data.status_message,
                    b"".join(encode_link(t, s) for t, s in links) if links else b"",
                )
            )
        return out


def span_of(event: Mapping[str, Any], data: SpanData, clock: BootClock, scope: str) -> Span:
    """The span an event and its description make, as a Span object."""
    parent = bytes(event["parent_span_id"])
    return Span(
        name=data.name,
        kind=data.kind,
        trace_id=bytes(event["trace_id"]),
        span_id=bytes(event["span_id"]),
        parent_span_id=parent if any(parent) else None,
        start_ns=clock.to_unix_ns(int(event["start_ns"])),
        end_ns=clock.to_unix_ns(int(event["end_ns"])),
        attributes=dict(data.attributes),
        error=data.error,
        status_message=data.status_message if data.error else "",
        scope=scope,
        remote_parent=bool(event.get("remote_parent", 0)),
        sampled=bool(event["trace_flags"] & 1),
        links=event_links(event),
    )
