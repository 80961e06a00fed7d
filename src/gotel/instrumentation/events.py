"""gotel's event conventions, and the decoder that applies them to ring-buffer records.

Every span event (one C struct per probe, laid out in BTF) carries the fields the core turns
into a span's identity: `start_ns`, `end_ns` (CLOCK_BOOTTIME), `trace_id[16]`, `span_id[8]`,
`parent_span_id[8]` (zero: a root span), `trace_flags`, and optionally `remote_parent` and a link
to another span: `link_trace_id[16]`, `link_span_id[8]` (zero: none).

A `char X[N]` with a sibling `X_len` is a Go string: it decodes to a `str` of its first
min(X_len, N) bytes (invalid UTF-8 replaced, as protobuf strings must be valid), and when the
buffer cut it, X is listed under TRUNCATED. Every other member decodes as StructLayout's
decoder would (ints, raw bytes for byte arrays, tuples for wider arrays).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from gotel.ebpf import HEADER_SIZE, StructLayout, record_stride
from gotel.errors import GotelError

Event = dict[str, Any]

SPAN_FIELDS = ("start_ns", "end_ns", "trace_id", "span_id", "parent_span_id", "trace_flags")
TRUNCATED = "_truncated"  # event key: names of the text fields their buffer cut (absent: none)


def truncated(event: Mapping[str, Any], name: str) -> bool:
    return name in event.get(TRUNCATED, ())


class EventDecoder:
    """Decodes one probe's fixed-layout events, one record or a whole ring block at a time."""

    def __init__(self, layout: StructLayout) -> None:
        missing = [name for name in SPAN_FIELDS if name not in layout.fields]
        if missing:
            raise GotelError(f"event {layout.name}: lacks the span fields {', '.join(missing)}")
        self.layout = layout
        self.size = layout.size
        self.stride = record_stride(layout.size)
        leaves = layout.leaves()
        keys = {leaf.key for leaf in leaves}
        parts, pos = [], 0
        names: list[str] = []
        groups: list[int] = []
        texts: list[tuple[str, int, int, str]] = []  # name, offset, capacity, length key
        for leaf in leaves:
            if leaf.offset > pos:
                parts.append(f"{leaf.offset - pos}x")
            field = layout.fields.get(leaf.key)
            if field is not None and field.kind == "char_array" and f"{leaf.key}_len" in keys:
                parts.append(f"{leaf.size}x")  # sliced from the record, not unpacked
                texts.append((leaf.key, leaf.offset, leaf.size, f"{leaf.key}_len"))
            else:
                parts.append(leaf.code)
                names.append(leaf.key)
                groups.append(leaf.values)
            pos = leaf.offset + leaf.size
        body = "".join(parts) + (f"{layout.size - pos}x" if layout.size > pos else "")
        self._record = struct.Struct("<" + body)
        # In a ring block each record follows its 8-byte header and is padded to the stride.
        tail = self.stride - HEADER_SIZE - layout.size
        self._block = struct.Struct(f"<{HEADER_SIZE}x{body}{tail}x" if tail else f"<8x{body}")
        if self._record.size != layout.size or self._block.size != self.stride:
            raise GotelError(f"event {layout.name}: decoder size does not match BTF")
        self._names = tuple(names)
        self._groups = tuple(groups) if any(n != 1 for n in groups) else None
        self._texts = tuple(
            (name, offset, capacity, names.index(length))
            for name, offset, capacity, length in texts
        )

    def _event(self, values: tuple[Any, ...], record: bytes | memoryview, base: int) -> Event:
        if self._groups is None:
            event = dict(zip(self._names, values, strict=True))
        else:
            event, i = {}, 0
            for name, n in zip(self._names, self._groups, strict=True):
                event[name] = values[i] if n == 1 else values[i : i + n]
                i += n
        cut = None
        for name, offset, capacity, length_at in self._texts:
            length = values[length_at]
            if length > capacity:
                length = capacity
                cut = (*cut, name) if cut else (name,)
            start = base + offset
            event[name] = record[start : start + length].decode("utf-8", "replace")
        if cut:
            event[TRUNCATED] = cut
        return event

    def decode(self, record: bytes | memoryview) -> Event:
        """One record (as RingBuffer.drain returns them); longer records: the tail is ignored."""
        try:
            values = self._record.unpack_from(record)
        except struct.error:
            raise GotelError(
                f"event {self.layout.name}: record of {len(record)} bytes, expected {self.size}"
            ) from None
        return self._event(values, record, 0)

    def decode_block(self, block: bytes, count: int) -> list[Event]:
        """`count` records as RingBuffer.drain_block returns them, with one iter_unpack."""
        end = count * self.stride
        if len(block) < end:
            raise GotelError(f"event {self.layout.name}: block shorter than {count} records")
        event = self._event
        stride, base = self.stride, HEADER_SIZE
        out = []
        for i, values in enumerate(
            self._block.iter_unpack(block[:end] if len(block) > end else block)
        ):
            out.append(event(values, block, i * stride + base))
        return out
