"""Fixtures for exporter tests: a clean OTEL_* environment, span factories, the OTLP receiver."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import gotel
from gotel.export.otlp_encode import encode_request
from gotel.trace.span import Span, SpanKind

# tests/otlp_receiver.py is a script as well as a helper module; make it importable.
_TESTS_DIR = str(Path(__file__).resolve().parents[2])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from otlp_receiver import Receiver  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set exactly the OTEL_* variables they mean; nothing leaks in from the shell."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


MakeSpan = Callable[..., Span]


@pytest.fixture
def make_span() -> MakeSpan:
    """Span factory: unique ids and a 1.5 ms duration unless told otherwise."""

    def factory(**overrides: Any) -> Span:
        start = 1_767_225_600_123_456_789
        fields: dict[str, Any] = {
            "name": "op",
            "kind": SpanKind.INTERNAL,
            "trace_id": os.urandom(16),
            "span_id": os.urandom(8),
            "parent_span_id": None,
            "start_ns": start,
            "end_ns": start + 1_500_000,
            "attributes": {},
        }
        fields.update(overrides)
        return Span(**fields)

    return factory


Encode = Callable[..., bytes]
RESOURCE = {"service.name": "shop", "process.pid": 4242}


@pytest.fixture
def encode() -> Encode:
    """Spans -> the ExportTraceServiceRequest every exporter receives."""

    def request(spans: list[Span], resource: dict[str, Any] | None = None) -> bytes:
        return encode_request(RESOURCE if resource is None else resource, spans, gotel.__version__)

    return request
