"""attribute.KeyValue slots of a bridged span (struct otel_attr in events.h) -> span attributes."""

from __future__ import annotations

import struct

from gotel.trace.span import AttributeValue

# struct otel_attr: numeric, count, type, key_len, value_len, key[32], value[96].
SLOT = struct.Struct("<QIBBH32s96s")
SLICE_STRING_SIZE = 24  # OTEL_SLICE_STRING_SIZE

# enum otel_value_type (attribute.Type).
BOOL, INT64, FLOAT64, STRING = 1, 2, 3, 4
BOOLSLICE, INT64SLICE, FLOAT64SLICE, STRINGSLICE, BYTESLICE = 5, 6, 7, 8, 9

Value = AttributeValue | list[AttributeValue] | bytes


def decode_slots(raw: bytes, count: int) -> tuple[dict[str, Value], list[str]]:
    """The first `count` slots of attrs[]: attributes in the order the program set them (a
    later value of a key wins, as in the SDK), and the keys whose value a buffer cut."""
    attrs: dict[str, Value] = {}
    cut: list[str] = []
    for i in range(min(count, len(raw) // SLOT.size)):
        numeric, full, kind, key_len, value_len, key_raw, value = SLOT.unpack_from(
            raw, i * SLOT.size
        )
        key = key_raw[: min(key_len, len(key_raw))].decode("utf-8", "replace")
        if not key:
            continue
        decoded, whole = _value(kind, numeric, full, value[:value_len])
        if decoded is None:
            continue
        attrs[key] = decoded
        if not whole or key_len > len(key_raw):
            cut.append(key)
    return attrs, cut


def _value(kind: int, numeric: int, full: int, data: bytes) -> tuple[Value | None, bool]:
    if kind == BOOL:
        return numeric != 0, True
    if kind == INT64:
        return numeric - (1 << 64) if numeric >= 1 << 63 else numeric, True
    if kind == FLOAT64:
        return struct.unpack("<d", numeric.to_bytes(8, "little"))[0], True
    if kind == STRING:
        return data.decode("utf-8", "replace"), len(data) >= full
    if kind == BYTESLICE:
        return bytes(data), len(data) >= full
    if kind == BOOLSLICE:
        items = [b != 0 for b in data[:full]]
    elif kind in (INT64SLICE, FLOAT64SLICE):
        n = min(full, len(data) // 8)
        items = list(struct.unpack(f"<{n}{'q' if kind == INT64SLICE else 'd'}", data[: n * 8]))
    elif kind == STRINGSLICE:
        items = []
        for at in range(0, len(data), SLICE_STRING_SIZE):
            length = data[at]
            text = data[at + 1 : at + 1 + min(length, SLICE_STRING_SIZE - 1)]
            items.append(text.decode("utf-8", "replace"))
            if length > SLICE_STRING_SIZE - 1:
                return items, False
    else:
        return None, True
    return items, len(items) >= full
