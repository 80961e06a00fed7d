"""The OpenTelemetry Go API bridge: a span the program starts by hand through the global
tracer, while it has no SDK installed, becomes a span of gotel's, parented with gotel's spans
both ways (an automatic span's Context parents it; it parents the automatic spans started
with its Context). Nothing is written into the program: gotel reads what newSpan, the span's
setters and End are given. A program with an SDK installed exports its own spans; the global
tracer delegates to the SDK and never reaches newSpan, so nothing is bridged twice."""

from __future__ import annotations

import struct
from collections.abc import Callable

from gotel.goelf import GoBinary
from gotel.instrumentation.common import CONTEXT_FIELDS, GOROUTINE_FIELDS
from gotel.instrumentation.events import truncated
from gotel.instrumentation.otelapi.attributes import decode_slots
from gotel.instrumentation.probe import Describe, Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData, SpanKind

MODULE = "go.opentelemetry.io/otel"
SCOPE = "gotel/otel-api"
GLOBAL = "go.opentelemetry.io/otel/internal/global"
TRACE = "go.opentelemetry.io/otel/trace"
NEW_SPAN = f"{GLOBAL}.(*tracer).newSpan"
SPAN = f"{GLOBAL}.(*nonRecordingSpan)"
# The option types' applySpanStart: attributeOption (WithAttributes) is read in the kernel;
# a spanOptionFunc is a closure, WithSpanKind's keeps the kind after its code pointer.
ATTRIBUTE_OPTION = (f"{TRACE}.(*attributeOption).applySpanStart",
                    f"{TRACE}.attributeOption.applySpanStart")
OPTION_FUNC = f"{TRACE}.spanOptionFunc.applySpanStart"
SPAN_KIND_CLOSURE = "WithSpanKind.func1"  # inlined into callers: "<caller>.WithSpanKind.func1"

OPTION = struct.Struct("<QQQ")  # struct otel_option
STATUS_ERROR = 1
KINDS = {1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT, 4: SpanKind.PRODUCER,
         5: SpanKind.CONSUMER}  # trace.SpanKind numbers are OTLP's

FIELDS = (
    *GOROUTINE_FIELDS,
    *CONTEXT_FIELDS,
    StructField("go.opentelemetry.io/otel/attribute.KeyValue", "Key", "off_kv_key", MODULE),
    StructField("go.opentelemetry.io/otel/attribute.KeyValue", "Value", "off_kv_value", MODULE),
    StructField("go.opentelemetry.io/otel/attribute.Value", "vtype", "off_value_vtype", MODULE),
    StructField("go.opentelemetry.io/otel/attribute.Value", "numeric", "off_value_numeric",
                MODULE),
    StructField("go.opentelemetry.io/otel/attribute.Value", "stringly", "off_value_stringly",
                MODULE),
    StructField("go.opentelemetry.io/otel/attribute.Value", "slice", "off_value_slice", MODULE),
)


def function_addresses(binary: GoBinary) -> dict[str, int]:
    """newSpan's address (the BPF code derives a PIE's load bias from it) and those of
    attributeOption's methods (an option whose itab points there is WithAttributes)."""
    constants: dict[str, int] = {}
    new_span = binary.function(NEW_SPAN)
    if new_span is not None:
        constants["new_span_address"] = new_span.address
    for const, symbol in zip(("attr_option_method", "attr_option_value_method"),
                             ATTRIBUTE_OPTION, strict=True):
        fn = binary.function(symbol)
        if fn is not None:
            constants[const] = fn.address
    return constants


def kv_size(constants: dict[str, int]) -> dict[str, int]:
    # KeyValue{Key string; Value{vtype, numeric, stringly string, slice any}}: every field
    # is word-aligned, so the last field's end is the struct's size.
    value = constants.get("off_kv_value")
    last = constants.get("off_value_slice")
    return {"kv_size": value + last + 16} if value is not None and last is not None else {}


def describer(binary: GoBinary) -> Describe:
    """describe for one binary's events. A span's kind comes from its WithSpanKind option: a
    spanOptionFunc whose closure code is one of WithSpanKind's copies, found here by name (the
    events carry code addresses, made file addresses in the kernel)."""
    option_func = binary.function(OPTION_FUNC)
    closures = frozenset(binary.function_entries_ending_with(SPAN_KIND_CLOSURE))
    method = option_func.address if option_func is not None else -1

    def kind_of(event: Event) -> SpanKind:
        kind = SpanKind.INTERNAL
        for option_method, code, captured in options(event):
            if option_method == method and code in closures:
                kind = KINDS.get(captured, SpanKind.INTERNAL)  # the last one wins, as in the SDK
        return kind

    def describe(event: Event) -> SpanData:
        return manual_span(event, kind_of)

    return describe


def options(event: Event) -> list[tuple[int, int, int]]:
    """The options newSpan was given (struct otel_option: method, word0, word1)."""
    raw = event["options"]
    n = min(event["option_count"], len(raw) // OPTION.size)
    return [OPTION.unpack_from(raw, i * OPTION.size) for i in range(n)]


def manual_span(event: Event, kind_of: Callable[[Event], SpanKind]) -> SpanData:
    attrs, cut = decode_slots(event["attrs"], event["attr_count"])
    if truncated(event, "name"):
        cut.append("span.name")
    if cut:
        attrs["gotel.truncated"] = ",".join(cut)
    if event["attrs_dropped"]:
        attrs["gotel.dropped_attributes"] = event["attrs_dropped"]
    error = event["status_code"] == STATUS_ERROR
    return SpanData(event["name"] or "span", kind_of(event), attrs, error,
                    event["status"] if error else "")


def _without_binary(event: Event) -> SpanData:
    return manual_span(event, lambda _e: SpanKind.INTERNAL)


BRIDGE = Probe(
    name="OpenTelemetry API bridge",
    module=MODULE,
    bpf_object=object_path(__file__, "bridge.bpf.o"),
    hooks=(
        Hook(NEW_SPAN, entry="new_span_entry", returns="new_span_return"),
        Hook(f"{SPAN}.End", entry="end_entry"),
        Hook(f"{SPAN}.SetAttributes", entry="set_attributes_entry", optional=True),
        Hook(f"{SPAN}.SetStatus", entry="set_status_entry", optional=True),
        Hook(f"{SPAN}.SetName", entry="set_name_entry", optional=True),
    ),
    fields=FIELDS,
    event="otel_span_event",
    describe=_without_binary,
    scope=SCOPE,
    # In-process only: the span's children leave the process through the other probes.
    context_in="the Context given to Tracer.Start (the span of gotel's it carries is the parent)",
    context_out="none itself: the Context Tracer.Start returns parents gotel's client spans",
    features=kv_size,
    binary_constants=function_addresses,
    binary_describe=describer,
)

PROBES = (BRIDGE,)
