"""The OpenTelemetry API bridge as data, and its events -> spans: attribute slots of every
value kind, truncation and dropped counts, status, and span kinds told by code address."""

from __future__ import annotations

import struct
import time

import pytest
from probe_testing import decoder, span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.otelapi import attributes, probe
from gotel.instrumentation.otelapi.probe import BRIDGE, FIELDS, MODULE, OPTION
from gotel.instrumentation.registry import all_probes
from gotel.offsets import database
from gotel.trace import BootClock, SpanKind

SLOTS = 16


@pytest.fixture(scope="module")
def layout():
    assert BRIDGE.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(BRIDGE.bpf_object) as obj:
        yield obj.struct_layout(BRIDGE.event)


def test_python_layouts_match_the_object():
    with BpfObject(BRIDGE.bpf_object) as obj:
        slot = obj.struct_layout("otel_attr")
        event = obj.struct_layout(BRIDGE.event)
    assert slot.size == attributes.SLOT.size
    assert [(f.name, f.offset) for f in slot.fields.values()] == [
        ("numeric", 0), ("count", 8), ("type", 12), ("key_len", 13), ("value_len", 14),
        ("key", 16), ("value", 48)]
    assert event.fields["attrs"].size == SLOTS * attributes.SLOT.size
    assert event.fields["options"].size == 4 * OPTION.size


def test_every_constant_and_program_exists_in_the_object():
    with BpfObject(BRIDGE.bpf_object) as obj:
        programs = set(obj.program_names())
        for hook in BRIDGE.hooks:
            assert {hook.entry, hook.returns} - {None} <= programs
        obj.set_constants({f.const: 0 for f in FIELDS})
        obj.set_constants({"new_span_address": 1, "attr_option_method": 2,
                           "attr_option_value_method": 3, "kv_size": 64})


def test_the_registry_finds_the_probe():
    assert BRIDGE in all_probes()


def test_the_bundled_database_covers_two_years_of_otel_releases():
    db = database.load(database.BUNDLED)
    keys = [f.key for f in FIELDS if f.module == MODULE]
    for minor in range(33, 48):  # v1.33.0 came out in December 2024
        assert db.scanned(MODULE, f"v1.{minor}.0", keys), minor


def slot(key: str, kind: int, *, numeric: int = 0, count: int = 0, value: bytes = b"",
         key_len: int | None = None) -> bytes:
    raw = key.encode()
    return attributes.SLOT.pack(numeric, count, kind, len(raw) if key_len is None else key_len,
                                len(value), raw[:32], value[:96])


def event(layout, slots=(), *, name="work", options=(), status=0, message="", dropped=0,
          name_len=None):
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    attrs = b"".join(slots).ljust(SLOTS * attributes.SLOT.size, b"\0")
    opts = b"".join(OPTION.pack(*o) for o in options).ljust(4 * OPTION.size, b"\0")
    values = dict(
        start_ns=now - 1_000_000, end_ns=now, pid=7, trace_flags=1,
        trace_id=bytes(range(16, 32)), span_id=bytes(range(8, 16)),
        parent_span_id=bytes(range(1, 9)), context=0, name_ptr=0, opts_ptr=0,
        status_code=status, attr_count=len(slots), attrs_dropped=dropped,
        option_count=len(options), options=opts, attrs=attrs,
    )
    for field, text, full in (("name", name, name_len), ("status", message, None)):
        raw = text.encode()
        values[field] = raw[: layout.fields[field].size]
        values[f"{field}_len"] = len(raw) if full is None else full
    return layout.encoder()(values)


def test_every_value_kind_the_slots_hold(layout):
    strings = b"".join(bytes([len(s)]) + s.encode().ljust(23, b"\0") for s in ("a", "bc"))
    slots = [
        slot("b", attributes.BOOL, numeric=1),
        slot("i", attributes.INT64, numeric=(1 << 64) - 5),
        slot("f", attributes.FLOAT64, numeric=struct.unpack("<Q", struct.pack("<d", 0.25))[0]),
        slot("s", attributes.STRING, count=4, value=b"gold"),
        slot("bs", attributes.BOOLSLICE, count=3, value=bytes([1, 0, 1])),
        slot("is", attributes.INT64SLICE, count=2, value=struct.pack("<2q", 1, -2)),
        slot("fs", attributes.FLOAT64SLICE, count=1, value=struct.pack("<d", 1.5)),
        slot("ss", attributes.STRINGSLICE, count=2, value=strings),
        slot("i", attributes.INT64, numeric=7),  # SetAttributes again: the later value wins
    ]
    span = span_from(BRIDGE, event(layout, slots), BootClock())
    assert span.kind == SpanKind.INTERNAL and span.name == "work" and not span.error
    assert span.attributes == {"b": True, "i": 7, "f": 0.25, "s": "gold",
                               "bs": [True, False, True], "is": [1, -2], "fs": [1.5],
                               "ss": ["a", "bc"]}


def test_what_a_buffer_cut_or_the_slots_dropped_is_said(layout):
    long = "v" * 96
    slots = [
        slot("s", attributes.STRING, count=200, value=long.encode()),
        slot("k" * 32, attributes.INT64, numeric=1, key_len=40),
        slot("many", attributes.INT64SLICE, count=20, value=struct.pack("<12q", *range(12))),
        slot("ss", attributes.STRINGSLICE, count=9,
             value=b"".join(bytes([3]) + b"abc".ljust(23, b"\0") for _ in range(4))),
    ]
    span = span_from(BRIDGE, event(layout, slots, name="n" * 96, name_len=150, dropped=3),
                     BootClock())
    attrs = span.attributes
    assert span.name == "n" * 96
    assert attrs["s"] == long and attrs["k" * 32] == 1
    assert attrs["many"] == list(range(12)) and attrs["ss"] == ["abc"] * 4
    assert set(attrs["gotel.truncated"].split(",")) == {"s", "k" * 32, "many", "ss", "span.name"}
    assert attrs["gotel.dropped_attributes"] == 3


def test_nested_values_and_empty_keys_make_no_attribute(layout):
    slots = [slot("m", 11, count=2), slot("", attributes.STRING, count=1, value=b"x")]
    assert span_from(BRIDGE, event(layout, slots), BootClock()).attributes == {}


def test_status_error_keeps_its_message(layout):
    span = span_from(BRIDGE, event(layout, status=1, message="it broke"), BootClock())
    assert span.error and span.status_message == "it broke"
    span = span_from(BRIDGE, event(layout, status=2, message=""), BootClock())
    assert not span.error


class FakeBinary:
    """What describer() asks of a binary: two functions and the WithSpanKind closures."""

    def __init__(self, closures: dict[int, str]) -> None:
        self.closures = closures

    def function(self, name: str):
        if name == probe.OPTION_FUNC:
            return type("F", (), {"address": 0x1000})()
        return None

    def function_entries_ending_with(self, suffix: str) -> dict[int, str]:
        assert suffix == probe.SPAN_KIND_CLOSURE
        return self.closures


def test_the_kind_comes_from_a_with_span_kind_closure(layout):
    describe = probe.describer(FakeBinary({0x2000: "main.handler.WithSpanKind.func1"}))

    def kind(options):
        return describe(decoder(BRIDGE).decode(event(layout, options=options))).kind

    assert kind([(0x1000, 0x2000, 3)]) == SpanKind.CLIENT
    assert kind([(0x1000, 0x2000, 3), (0x1000, 0x2000, 5)]) == SpanKind.CONSUMER  # last wins
    assert kind([(0x1000, 0x3000, 3)]) == SpanKind.INTERNAL  # another closure (WithNewRoot)
    assert kind([(0x1111, 0x2000, 3)]) == SpanKind.INTERNAL  # not a spanOptionFunc
    assert kind([(0x1000, 0x2000, 0)]) == SpanKind.INTERNAL  # SpanKindUnspecified
