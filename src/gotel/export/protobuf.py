"""Protocol Buffers wire format: the few primitives gotel's OTLP encoder and decoder need.

Encoding builds `bytes` from pieces joined once (b"".join is one C call), so a message costs
a handful of allocations. Wire types (protobuf encoding guide): 0 varint, 1 fixed64,
2 length-delimited, 5 fixed32.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5

_U64 = (1 << 64) - 1
# One-byte varints are by far the most common (lengths < 128): prebuilt, no loop.
_SMALL = tuple(bytes((i,)) for i in range(128))
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")


class DecodeError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def varint(value: int) -> bytes:
    """A base-128 varint; negative values as their 64-bit two's complement (int64 fields)."""
    if 0 <= value < 128:
        return _SMALL[value]
    value &= _U64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(key: bytes, payload: bytes) -> bytes:
    """A complete length-delimited field: key, length, payload."""
    n = len(payload)
    return key + (_SMALL[n] if n < 128 else varint(n)) + payload


def fixed64(value: int) -> bytes:
    return _FIXED64.pack(value & _U64)


def fixed32(value: int) -> bytes:
    return _FIXED32.pack(value & 0xFFFFFFFF)


def double(value: float) -> bytes:
    return _DOUBLE.pack(value)


# --- decoding -------------------------------------------------------------------------------


def _read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field: ints for varint and fixed fields
    (unsigned), bytes for length-delimited ones. Groups (wire types 3, 4) are refused."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        value: Any
        if wire_type == VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64")
            (value,) = _FIXED64.unpack_from(buf, pos)
            pos += 8
        elif wire_type == LENGTH_DELIMITED:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise DecodeError(f"field {number}: length {length} past the end")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32")
            (value,) = _FIXED32.unpack_from(buf, pos)
            pos += 4
        else:
            raise DecodeError(f"field {number}: unsupported wire type {wire_type}")
        yield number, wire_type, value


def signed64(value: int) -> int:
    """An int64 field's varint (read unsigned) as the signed value it encodes."""
    return value - (1 << 64) if value >> 63 else value


def as_double(value: int) -> float:
    """A double field's fixed64 (read as an unsigned int) as the float it encodes."""
    return _DOUBLE.unpack(_FIXED64.pack(value))[0]
