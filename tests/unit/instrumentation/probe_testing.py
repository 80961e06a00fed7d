"""Event records -> spans exactly as the agent makes them (a module: several suites use it)."""

from __future__ import annotations

import functools

import gotel
from gotel.ebpf import BpfObject
from gotel.export.otlp_decode import decode_request
from gotel.export.otlp_encode import encode_resource, encode_scope, resource_spans, scope_spans
from gotel.instrumentation.events import EventDecoder
from gotel.instrumentation.probe import Probe
from gotel.trace import BootClock, Span
from gotel.trace.assembly import SpanAssembler


@functools.cache
def decoder(probe: Probe) -> EventDecoder:
    assert probe.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(probe.bpf_object) as obj:
        return EventDecoder(obj.struct_layout(probe.event))


def encoded_request(probe: Probe, records: list[bytes], clock: BootClock) -> bytes:
    """The OTLP request the agent would send for these records (resource: none)."""
    events = [decoder(probe).decode(record) for record in records]
    assembler = SpanAssembler(probe.name, probe.describe, clock)
    spans = assembler.encode(assembler.describe(events))
    scope = encode_scope(probe.scope, gotel.__version__)
    return resource_spans(encode_resource({}), [scope_spans(scope, spans)])


def span_from(probe: Probe, record: bytes, clock: BootClock) -> Span:
    """The one span a record makes: decoded, described, encoded, and read back."""
    [(_, [span])] = decode_request(encoded_request(probe, [record], clock))
    return span
