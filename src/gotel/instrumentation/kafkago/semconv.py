"""Messaging semantic conventions (1.37) for Kafka: span names and attributes."""

from __future__ import annotations

SYSTEM = "kafka"
SEND = "send"
RECEIVE = "receive"
OTHER = "_OTHER"


def span_name(operation: str, destination: str) -> str:
    """"send orders": the operation, then the destination when known."""
    return f"{operation} {destination}" if destination else operation


def message_key(raw: str) -> str | None:
    """The key as an attribute value: None for an absent or empty key (semconv: not set)."""
    return raw or None
