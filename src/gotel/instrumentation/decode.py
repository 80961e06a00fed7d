"""Helpers shared by probes to turn raw event fields into span values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gotel.trace import BootClock, Span, SpanKind


def text(event: Mapping[str, Any], name: str) -> tuple[str, bool]:
    """The string field `name` cut to its `<name>_len`, and whether the buffer truncated it."""
    raw: bytes = event[name]
    length = int(event[f"{name}_len"])
    value = raw[: min(length, len(raw))].decode("utf-8", errors="replace")
    return value, length > len(raw)


def split_host_port(hostport: str) -> tuple[str, int | None]:
    """"host:port", "[v6]:port", "host" -> (host, port or None)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return hostport, None
        host, rest = hostport[1:end], hostport[end + 1 :]
        return host, _port(rest[1:]) if rest.startswith(":") else None
    if hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
        return host, _port(port)
    return hostport, None


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def parent_id(event: Mapping[str, Any]) -> bytes | None:
    """The event's parent span id, None for a root span (all zero)."""
    parent = bytes(event["parent_span_id"])
    return parent if any(parent) else None


def span_from_event(
    event: Mapping[str, Any],
    clock: BootClock,
    *,
    name: str,
    kind: SpanKind,
    attributes: dict[str, Any],
    error: bool,
    scope: str,
    status_message: str = "",
) -> Span:
    """A span from the fields every span event carries (ids, boot-time stamps)."""
    return Span(
        name=name,
        kind=kind,
        trace_id=bytes(event["trace_id"]),
        span_id=bytes(event["span_id"]),
        parent_span_id=parent_id(event),
        start_ns=clock.to_unix_ns(int(event["start_ns"])),
        end_ns=clock.to_unix_ns(int(event["end_ns"])),
        attributes=attributes,
        error=error,
        status_message=status_message,
        scope=scope,
        remote_parent=bool(event.get("remote_parent", 0)),
        sampled=bool(int(event.get("trace_flags", 1)) & 1),
    )
