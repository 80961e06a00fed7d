"""Layouts read from a BPF object's BTF: structs (with a compiled decoder), enums, and the
variables of a data section (`volatile const` knobs in .rodata).

BTF is the one source of truth for structures shared by BPF C and Python; nothing here
repeats an offset by hand. The raw records follow include/uapi/linux/btf.h.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gotel.ebpf import libbpf
from gotel.errors import GotelError

# BTF_KIND_* (linux/btf.h)
KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19
_MODIFIERS = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})

_INT_SIGNED = 1
_INT_CHAR = 2
_INT_BOOL = 4

_U32 = struct.Struct("<I")
_TYPE = struct.Struct("<III")  # name_off, info, size|type
_TYPE_SIZE = _TYPE.size

Value = int | float | bool | bytes | tuple[int, ...]


class UnknownNameError(GotelError, KeyError):
    """A program, map, constant, struct or enum name the object does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Field:
    """One member of a struct (or one variable of a data section).

    kind: 'int' | 'uint' | 'bool' | 'enum' | 'float' | 'ptr' | 'char_array' | 'array' |
    'struct' | 'union' | 'bitfield' | 'bytes' (anything else, decoded raw).
    For arrays, `count` is the number of elements (multi-dimensional arrays flattened) and
    `elem_kind` their kind; `signed` applies to ints, enums and int array elements.
    """

    name: str
    offset: int
    size: int
    kind: str
    count: int = 1
    signed: bool = False
    elem_kind: str = ""
    layout: StructLayout | None = None  # kind == 'struct'
    bit_offset: int = 0  # kind == 'bitfield': bits from `offset`
    bit_size: int = 0
    enumerators: tuple[tuple[str, int], ...] = ()  # kind == 'enum': its names and values


@dataclass(frozen=True)
class Leaf:
    """One flattened member: its key, offset and size, struct code, and values it unpacks to."""

    key: str
    offset: int
    size: int
    code: str
    values: int


@dataclass(frozen=True)
class StructLayout:
    """A struct as the compiler laid it out. `fields` are the top-level members in order."""

    name: str
    size: int
    fields: dict[str, Field]
    _codec: list[Any] = field(default_factory=list, repr=False, compare=False)

    def decoder(self) -> Callable[[bytes | memoryview], dict[str, Value]]:
        """A function turning one record into {field: value}, built once per layout.

        Nested structs are flattened to 'outer.inner' keys; char arrays and 1-byte int
        arrays come back as raw bytes (the caller trims NULs); wider int arrays as tuples;
        unions and unknown types as raw bytes. Bitfields are not supported.
        Records longer than `size` are accepted (the tail is ignored).
        """
        return self._compiled()[0]

    def encoder(self) -> Callable[[Mapping[str, Any]], bytes]:
        """The inverse of decoder(): missing keys are zero. Used to feed tests and maps."""
        return self._compiled()[1]

    def leaves(self) -> list[Leaf]:
        """Every scalar or array member, nested structs flattened to 'outer.inner', in order,
        with the struct module code that reads it."""
        return [Leaf(*leaf) for leaf in _flatten(self, "", 0)]

    def _compiled(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        if not self._codec:
            self._codec.extend(_compile(self))
        return self._codec[0], self._codec[1]


# --- decoder construction ------------------------------------------------------------------

_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def _scalar_code(kind: str, size: int, signed: bool) -> str | None:
    if kind in ("int", "uint", "enum", "ptr") and size in _INT_CODES:
        code = _INT_CODES[size]
        return code if signed else code.upper()
    if kind == "bool" and size == 1:
        return "?"
    if kind == "float" and size in (4, 8):
        return "f" if size == 4 else "d"
    return None


def _flatten(layout: StructLayout, prefix: str, base: int) -> list[tuple[str, int, int, str, int]]:
    """(key, offset, size, struct code, values produced) for every leaf, in order."""
    leaves: list[tuple[str, int, int, str, int]] = []
    for f in layout.fields.values():
        key = prefix + f.name
        off = base + f.offset
        if f.kind == "bitfield":
            raise GotelError(
                f"struct {layout.name}: field {f.name} is a bitfield, which the decoder does "
                "not support (use a whole integer in the event struct)"
            )
        if f.kind == "struct" and f.layout is not None:
            leaves.extend(_flatten(f.layout, key + ".", off))
            continue
        if f.kind == "array":
            elem_size = f.size // f.count if f.count else 0
            code = _scalar_code(f.elem_kind, elem_size, f.signed)
            if code is not None and elem_size > 1:
                leaves.append((key, off, f.size, f"{f.count}{code}", f.count))
                continue
        code = _scalar_code(f.kind, f.size, f.signed)
        if code is None:  # char arrays, byte arrays, unions, odd sizes: raw bytes
            code = f"{f.size}s"
        leaves.append((key, off, f.size, code, 1))
    return leaves


def _compile(layout: StructLayout) -> tuple[Callable[..., Any], Callable[..., Any]]:
    leaves = _flatten(layout, "", 0)
    parts = ["<"]
    pos = 0
    for key, off, size, code, _n in leaves:
        if off < pos:
            raise GotelError(f"struct {layout.name}: field {key} overlaps the previous one")
        if off > pos:
            parts.append(f"{off - pos}x")  # compiler-inserted hole
        parts.append(code)
        pos = off + size
    if layout.size > pos:
        parts.append(f"{layout.size - pos}x")
    st = struct.Struct("".join(parts))
    if st.size != layout.size:
        raise GotelError(f"struct {layout.name}: decoder size {st.size} != BTF size {layout.size}")
    keys = tuple(leaf[0] for leaf in leaves)
    groups = tuple((leaf[0], leaf[4]) for leaf in leaves)
    unpack_from = st.unpack_from
    name, size = layout.name, layout.size

    def short(buf: bytes | memoryview) -> GotelError:
        return GotelError(f"struct {name}: record of {len(buf)} bytes, expected {size}")

    if all(n == 1 for _k, n in groups):

        def decode(buf: bytes | memoryview) -> dict[str, Value]:
            try:
                return dict(zip(keys, unpack_from(buf), strict=True))
            except struct.error:
                raise short(buf) from None

    else:

        def decode(buf: bytes | memoryview) -> dict[str, Value]:
            try:
                values = unpack_from(buf)
            except struct.error:
                raise short(buf) from None
            out: dict[str, Value] = {}
            i = 0
            for key, n in groups:
                out[key] = values[i] if n == 1 else values[i : i + n]
                i += n
            return out

    defaults: list[Any] = []
    for _key, _off, _size, code, n in leaves:
        zero: Any = b"" if code.endswith("s") else 0
        defaults.append((0,) * n if n > 1 else zero)

    def encode(values: Mapping[str, Any]) -> bytes:
        flat: list[Any] = []
        for (key, n), default in zip(groups, defaults, strict=True):
            v = values.get(key, default)
            if n > 1:
                flat.extend(v)
            else:
                flat.append(v)
        return st.pack(*flat)

    return decode, encode


# --- reading BTF through libbpf ---------------------------------------------------------------


@dataclass(frozen=True)
class _Type:
    id: int
    kind: int
    name: str
    vlen: int
    kflag: bool
    size_or_type: int
    addr: int  # address of the btf_type record; kind-specific data follows it

    def extra(self, count: int, fmt: struct.Struct) -> list[tuple[int, ...]]:
        raw = ctypes.string_at(self.addr + _TYPE_SIZE, count * fmt.size)
        return list(fmt.iter_unpack(raw)) if count else []


_MEMBER = struct.Struct("<III")  # name_off, type, offset
_ARRAY = struct.Struct("<III")  # type, index_type, nelems
_ENUM = struct.Struct("<Ii")  # name_off, val
_ENUM64 = struct.Struct("<III")  # name_off, val_lo32, val_hi32
_SECINFO = struct.Struct("<III")  # type, offset, size


class Btf:
    """Read-only view of a `struct btf *` that its owner (a bpf_object) keeps alive."""

    def __init__(self, ptr: int) -> None:
        self._ptr = ptr
        self._lib = libbpf.lib()

    def type(self, type_id: int) -> _Type:
        addr = self._lib.btf__type_by_id(self._ptr, type_id)
        if not addr:
            raise GotelError(f"btf: no type with id {type_id}")
        name_off, info, size_or_type = _TYPE.unpack(ctypes.string_at(addr, _TYPE_SIZE))
        return _Type(
            id=type_id,
            kind=(info >> 24) & 0x1F,
            name=self.name(name_off),
            vlen=info & 0xFFFF,
            kflag=bool(info >> 31),
            size_or_type=size_or_type,
            addr=addr,
        )

    def name(self, offset: int) -> str:
        raw = self._lib.btf__name_by_offset(self._ptr, offset)
        return raw.decode() if raw else ""

    def find(self, name: str, *kinds: int) -> _Type | None:
        for kind in kinds:
            type_id = self._lib.btf__find_by_name_kind(self._ptr, name.encode(), kind)
            if type_id > 0:
                return self.type(type_id)
        return None

    def names_of_kind(self, *kinds: int) -> list[str]:
        out = []
        for type_id in range(1, self._lib.btf__type_cnt(self._ptr)):
            t = self.type(type_id)
            if t.kind in kinds and t.name:
                out.append(t.name)
        return sorted(out)

    def strip(self, type_id: int) -> _Type:
        """The type behind typedefs and qualifiers."""
        t = self.type(type_id)
        while t.kind in _MODIFIERS:
            t = self.type(t.size_or_type)
        return t

    def size_of(self, type_id: int) -> int:
        size = self._lib.btf__resolve_size(self._ptr, type_id)
        if size < 0:
            raise GotelError(f"btf: cannot size type {type_id}: {libbpf.strerror(size)}")
        return size

    # -- kinds ---------------------------------------------------------------------------

    def describe(self, name: str, type_id: int, offset: int) -> Field:
        """A Field for `name` of type `type_id` placed at byte `offset`."""
        t = self.strip(type_id)
        size = self.size_of(t.id)
        if t.kind == KIND_INT:
            (enc,) = _U32.unpack(ctypes.string_at(t.addr + _TYPE_SIZE, 4))
            encoding = (enc >> 24) & 0x0F
            if encoding & _INT_BOOL:
                return Field(name, offset, size, "bool")
            signed = bool(encoding & _INT_SIGNED)
            return Field(name, offset, size, "int" if signed else "uint", signed=signed)
        if t.kind in (KIND_ENUM, KIND_ENUM64):
            return Field(name, offset, size, "enum", signed=t.kflag,
                         enumerators=tuple(self.enum_values(t).items()))
        if t.kind == KIND_PTR:
            return Field(name, offset, size, "ptr")
        if t.kind == KIND_FLOAT:
            return Field(name, offset, size, "float")
        if t.kind == KIND_ARRAY:
            return self._array(name, t, offset, size)
        if t.kind == KIND_STRUCT:
            return Field(name, offset, size, "struct", layout=self.layout(t))
        if t.kind == KIND_UNION:
            return Field(name, offset, size, "union")
        return Field(name, offset, size, "bytes")

    def _array(self, name: str, t: _Type, offset: int, size: int) -> Field:
        count = 1
        elem = t
        while elem.kind == KIND_ARRAY:  # int x[2][3] -> 6 elements
            elem_id, _index, nelems = elem.extra(1, _ARRAY)[0]
            count *= nelems
            elem = self.strip(elem_id)
        inner = self.describe(name, elem.id, offset)
        if inner.kind in ("int", "uint") and inner.size == 1:
            raw = self.type(elem.id)
            (enc,) = _U32.unpack(ctypes.string_at(raw.addr + _TYPE_SIZE, 4))
            is_char = bool((enc >> 24) & _INT_CHAR) or raw.name == "char"
            kind = "char_array" if is_char else "array"
            return Field(name, offset, size, kind, count, inner.signed, inner.kind)
        return Field(name, offset, size, "array", count, inner.signed, inner.kind)

    def layout(self, t: _Type) -> StructLayout:
        fields: dict[str, Field] = {}
        for index, (name_off, member_type, raw_offset) in enumerate(t.extra(t.vlen, _MEMBER)):
            name = self.name(name_off) or f"_anon{index}"
            if t.kflag and raw_offset >> 24:  # bitfield: size in the high byte
                bit_size, bit_off = raw_offset >> 24, raw_offset & 0xFFFFFF
                base = self.describe(name, member_type, bit_off // 8)
                fields[name] = Field(
                    name,
                    bit_off // 8,
                    base.size,
                    "bitfield",
                    signed=base.signed,
                    bit_offset=bit_off % 8,
                    bit_size=bit_size,
                )
                continue
            bit_off = raw_offset & 0xFFFFFF if t.kflag else raw_offset
            if bit_off % 8:
                fields[name] = Field(name, bit_off // 8, 0, "bitfield", bit_offset=bit_off % 8)
                continue
            fields[name] = self.describe(name, member_type, bit_off // 8)
        return StructLayout(t.name or "<anonymous>", t.size_or_type, fields)

    def enum_values(self, t: _Type) -> dict[str, int]:
        values: dict[str, int] = {}
        if t.kind == KIND_ENUM:
            for name_off, val in t.extra(t.vlen, _ENUM):
                # kflag=1 marks a signed enum; otherwise the s32 holds an unsigned value
                values[self.name(name_off)] = val if t.kflag else val & 0xFFFFFFFF
        else:
            for name_off, lo, hi in t.extra(t.vlen, _ENUM64):
                val = (hi << 32) | lo
                if t.kflag and val >> 63:
                    val -= 1 << 64
                values[self.name(name_off)] = val
        return values

    def datasec_vars(self, t: _Type) -> dict[str, Field]:
        """Variables of a DATASEC by name, with offsets inside the section."""
        out: dict[str, Field] = {}
        for var_id, offset, _size in t.extra(t.vlen, _SECINFO):
            var = self.type(var_id)
            if var.kind != KIND_VAR:
                continue
            out[var.name] = self.describe(var.name, var.size_or_type, offset)
        return out
