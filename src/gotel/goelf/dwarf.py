"""Struct field offsets from a Go binary's DWARF, without parsing all of it.

Go's linker puts every type DIE into one runtime compilation unit, half a megabyte of DIEs
in a 10 MB binary; walking it DIE by DIE (pyelftools: seconds) is what we avoid. Type names
are inline strings (DW_FORM_string) right after the abbreviation code, so a struct is found
by searching .debug_info for its name, checking that the bytes before it are the code of a
structure_type abbreviation, and decoding only that DIE and its members. When a producer
lays names out differently, a plain walk over every unit is the fallback.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gotel.goelf.elffile import ElfImage

log = logging.getLogger(__name__)

DW_TAG_member = 0x0D
DW_TAG_structure_type = 0x13
DW_AT_name = 0x03
DW_AT_data_member_location = 0x38
DW_FORM_string = 0x08
DW_FORM_strp = 0x0E
DW_FORM_indirect = 0x16
DW_FORM_implicit_const = 0x21
DW_FORM_line_strp = 0x1F
DW_OP_plus_uconst = 0x23

CACHE_SCHEMA = 1

# Fixed sizes of forms; -1 address size, -2 offset size (4 or 8), None variable.
_FIXED = {
    0x01: -1, 0x05: 2, 0x06: 4, 0x07: 8, 0x0B: 1, 0x0C: 1, 0x0E: -2, 0x10: -2, 0x11: 1,
    0x12: 2, 0x13: 4, 0x14: 8, 0x17: -2, 0x19: 0, 0x1C: 4, 0x1D: -2, 0x1E: 16, 0x1F: -2,
    0x20: 8, 0x21: 0, 0x24: 8, 0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4, 0x29: 1, 0x2A: 2,
    0x2B: 3, 0x2C: 4, 0x1F20: -2, 0x1F21: -2,
}
_ULEB_FORMS = {0x0F, 0x15, 0x1A, 0x1B, 0x22, 0x23, 0x1F01, 0x1F02}
_CONST_FORMS = {0x0B: "<B", 0x05: "<H", 0x06: "<I", 0x07: "<Q"}


class DwarfError(ValueError):
    """Malformed DWARF; callers treat the binary as having none."""


@dataclass(frozen=True)
class Abbrev:
    tag: int
    children: bool
    attrs: tuple[tuple[int, int, int], ...]  # (attribute, form, implicit constant)


@dataclass(frozen=True)
class Unit:
    offset: int
    end: int
    dies: int  # first DIE
    version: int
    abbrev_offset: int
    addr_size: int
    offset_size: int


def _uleb(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _sleb(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return (result - (1 << shift) if b & 0x40 else result), pos


def _uleb_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class DwarfIndex:
    """Lazily decompressed .debug_info / .debug_abbrev with targeted struct lookups."""

    def __init__(self, img: ElfImage) -> None:
        info = img.debug_section("info")
        abbrev = img.debug_section("abbrev")
        if info is None or abbrev is None:
            raise DwarfError("no readable .debug_info/.debug_abbrev")
        self.info, self.abbrev = info, abbrev
        self._img = img
        self._strs: dict[str, bytes] = {}
        self.units = self._units()
        self._unit_starts = [u.offset for u in self.units]
        self._tables: dict[int, dict[int, Abbrev]] = {}

    def _units(self) -> list[Unit]:
        units, pos, info = [], 0, self.info
        while pos + 11 <= len(info):
            (length,) = struct.unpack_from("<I", info, pos)
            offset_size, hdr = 4, pos + 4
            if length == 0xFFFFFFFF:
                (length,) = struct.unpack_from("<Q", info, hdr)
                offset_size, hdr = 8, hdr + 8
            end = hdr + length
            if end > len(info) or length < 7:
                raise DwarfError(f"unit at {pos:#x} runs past .debug_info")
            (version,) = struct.unpack_from("<H", info, hdr)
            off_fmt = "<I" if offset_size == 4 else "<Q"
            if version >= 5:
                unit_type, addr_size = info[hdr + 2], info[hdr + 3]
                (abbrev_off,) = struct.unpack_from(off_fmt, info, hdr + 4)
                dies = hdr + 4 + offset_size
                if unit_type in (2, 6):  # type units: signature + type offset
                    dies += 8 + offset_size
                elif unit_type in (4, 5):  # skeleton / split: dwo id
                    dies += 8
            elif version >= 2:
                (abbrev_off,) = struct.unpack_from(off_fmt, info, hdr + 2)
                addr_size = info[hdr + 2 + offset_size]
                dies = hdr + 3 + offset_size
            else:
                raise DwarfError(f"unit at {pos:#x} has DWARF version {version}")
            units.append(Unit(pos, end, dies, version, abbrev_off, addr_size, offset_size))
            pos = end
        return units

    def _table(self, offset: int) -> dict[int, Abbrev]:
        table = self._tables.get(offset)
        if table is not None:
            return table
        table, buf, pos = {}, self.abbrev, offset
        while True:
            code, pos = _uleb(buf, pos)
            if code == 0:
                break
            tag, pos = _uleb(buf, pos)
            children = buf[pos] == 1
            pos += 1
            attrs = []
            while True:
                attr, pos = _uleb(buf, pos)
                form, pos = _uleb(buf, pos)
                if attr == 0 and form == 0:
                    break
                implicit = 0
                if form == DW_FORM_implicit_const:
                    implicit, pos = _sleb(buf, pos)
                attrs.append((attr, form, implicit))
            table[code] = Abbrev(tag, children, tuple(attrs))
        self._tables[offset] = table
        return table

    # --- DIE decoding ------------------------------------------------------------------
    def _die(self, unit: Unit, table: dict[int, Abbrev], pos: int,
             want: tuple[int, ...] = ()) -> tuple[Abbrev | None, dict[int, object], int]:
        """Decode one DIE: (abbrev or None for a null entry, wanted attrs, next position)."""
        info = self.info
        code, pos = _uleb(info, pos)
        if code == 0:
            return None, {}, pos
        ab = table.get(code)
        if ab is None:
            raise DwarfError(f"unknown abbreviation {code} at {pos:#x}")
        values: dict[int, object] = {}
        for attr, form, implicit in ab.attrs:
            start = pos
            if form == DW_FORM_indirect:
                form, pos = _uleb(info, pos)
                start = pos
            pos = self._skip(unit, form, pos)
            if attr in want:
                values[attr] = self._value(unit, form, implicit, start, pos)
        if pos > unit.end:
            raise DwarfError(f"DIE at {pos:#x} runs past its unit")
        return ab, values, pos

    def _skip(self, unit: Unit, form: int, pos: int) -> int:
        size = _FIXED.get(form)
        if size is not None:
            if size == -1:
                return pos + unit.addr_size
            return pos + (unit.offset_size if size == -2 else size)
        if form == DW_FORM_string:
            end = self.info.index(b"\0", pos)
            return end + 1
        if form in _ULEB_FORMS:
            return _uleb(self.info, pos)[1]
        if form == 0x0D:  # sdata
            return _sleb(self.info, pos)[1]
        if form in (0x09, 0x18):  # block, exprloc
            n, pos = _uleb(self.info, pos)
            return pos + n
        if form == 0x0A:
            return pos + 1 + self.info[pos]
        if form == 0x03:
            return pos + 2 + struct.unpack_from("<H", self.info, pos)[0]
        if form == 0x04:
            return pos + 4 + struct.unpack_from("<I", self.info, pos)[0]
        raise DwarfError(f"unsupported DWARF form {form:#x}")

    def _value(self, unit: Unit, form: int, implicit: int, start: int, end: int) -> object:
        info = self.info
        if form == DW_FORM_string:
            return info[start : end - 1].decode("utf-8", "replace")
        if form in (DW_FORM_strp, DW_FORM_line_strp):
            fmt = "<I" if unit.offset_size == 4 else "<Q"
            (off,) = struct.unpack_from(fmt, info, start)
            return self._string("str" if form == DW_FORM_strp else "line_str", off)
        if form in _CONST_FORMS:
            return struct.unpack_from(_CONST_FORMS[form], info, start)[0]
        if form == 0x0F:
            return _uleb(info, start)[0]
        if form == 0x0D:
            return _sleb(info, start)[0]
        if form == DW_FORM_implicit_const:
            return implicit
        if form == 0x18:  # exprloc: old-style member location "DW_OP_plus_uconst n"
            n, pos = _uleb(info, start)
            if n and info[pos] == DW_OP_plus_uconst:
                return _uleb(info, pos + 1)[0]
        return None

    def _string(self, section: str, off: int) -> str | None:
        if section not in self._strs:
            self._strs[section] = self._img.debug_section(section) or b""
        buf = self._strs[section]
        end = buf.find(b"\0", off)
        return buf[off:end].decode("utf-8", "replace") if end >= 0 else None

    def _members(self, unit: Unit, table: dict[int, Abbrev], pos: int) -> dict[str, int]:
        """Members of the struct whose children start at `pos`."""
        fields: dict[str, int] = {}
        depth = 1
        want = (DW_AT_name, DW_AT_data_member_location)
        while depth:
            ab, values, pos = self._die(unit, table, pos, want)
            if ab is None:
                depth -= 1
                continue
            if depth == 1 and ab.tag == DW_TAG_member:
                name, loc = values.get(DW_AT_name), values.get(DW_AT_data_member_location)
                if isinstance(name, str) and isinstance(loc, int):
                    fields.setdefault(name, loc)
            if ab.children:
                depth += 1
        return fields

    # --- lookups -----------------------------------------------------------------------
    def structs(self, names: Iterable[str]) -> dict[str, dict[str, int] | None]:
        """Field offsets of each named struct; None for a struct not in this DWARF."""
        wanted = set(names)
        found: dict[str, dict[str, int] | None] = {}
        for name in wanted:
            fields = self._find_fast(name)
            if fields is not None:
                found[name] = fields
        missing = wanted - found.keys()
        # Units the search cannot see into (C units of externally linked binaries name
        # their structs through .debug_str) are walked; Go's own never need to be.
        opaque = [u for u in self.units if not self._searchable(self._table(u.abbrev_offset))]
        if missing and opaque:
            found.update(self._find_by_walk(missing, opaque))
        for name in wanted:
            found.setdefault(name, None)
        return found

    def _struct_codes(self, table: dict[int, Abbrev]) -> list[bytes]:
        return [
            _uleb_bytes(code) for code, ab in table.items()
            if ab.tag == DW_TAG_structure_type and ab.attrs
            and ab.attrs[0][:2] == (DW_AT_name, DW_FORM_string)
        ]

    @staticmethod
    def _searchable(table: dict[int, Abbrev]) -> bool:
        """True when every struct abbreviation names itself first, inline: search suffices."""
        return all(
            ab.attrs and ab.attrs[0][:2] == (DW_AT_name, DW_FORM_string)
            for ab in table.values() if ab.tag == DW_TAG_structure_type
        )

    def _find_fast(self, name: str) -> dict[str, int] | None:
        needle = name.encode() + b"\0"
        info = self.info
        pos = info.find(needle)
        while pos >= 0:
            unit = self.units[bisect.bisect_right(self._unit_starts, pos) - 1]
            table = self._table(unit.abbrev_offset)
            for code in self._struct_codes(table):
                start = pos - len(code)
                if start >= unit.dies and info[start:pos] == code:
                    fields = self._try_struct(unit, table, start, name)
                    if fields is not None:
                        return fields
            pos = info.find(needle, pos + 1)
        return None

    def _try_struct(self, unit: Unit, table: dict[int, Abbrev], start: int,
                    name: str) -> dict[str, int] | None:
        # The match may be a coincidence (a longer string ending in our name, preceded by
        # a byte equal to the code): only a DIE that decodes cleanly, members included, counts.
        try:
            ab, values, pos = self._die(unit, table, start, (DW_AT_name,))
            if ab is None or ab.tag != DW_TAG_structure_type or values.get(DW_AT_name) != name:
                return None
            return self._members(unit, table, pos) if ab.children else {}
        except (DwarfError, IndexError, ValueError, struct.error):
            return None

    def _find_by_walk(self, names: set[str],
                      units: list[Unit]) -> dict[str, dict[str, int] | None]:
        found: dict[str, dict[str, int] | None] = {}
        for unit in units:
            table = self._table(unit.abbrev_offset)
            pos, depth = unit.dies, 0
            while pos < unit.end and len(found) < len(names):
                ab, values, pos = self._die(unit, table, pos, (DW_AT_name,))
                if ab is None:
                    depth -= 1
                    if depth <= 0:
                        break
                    continue
                name = values.get(DW_AT_name)
                if ab.tag == DW_TAG_structure_type and name in names and ab.children:
                    assert isinstance(name, str)
                    found.setdefault(name, self._members(unit, table, pos))
                if ab.children:
                    depth += 1
        return found


# --- on-disk cache -------------------------------------------------------------------------
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gotel" / "dwarf"


def _cache_file(build_id: str) -> Path:
    return cache_dir() / (re.sub(r"[^A-Za-z0-9._-]", "_", build_id)[:200] + ".json")


def load_cache(build_id: str) -> dict[str, dict[str, int] | None]:
    try:
        doc = json.loads(_cache_file(build_id).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != CACHE_SCHEMA:
        return {}
    structs = doc.get("structs")
    if not isinstance(structs, dict):
        return {}
    # Hand-edited or damaged entries are dropped (and recomputed), never trusted.
    return {
        name: fields for name, fields in structs.items()
        if fields is None or (isinstance(fields, dict) and all(
            isinstance(k, str) and type(v) is int for k, v in fields.items()))
    }


def save_cache(build_id: str, structs: dict[str, dict[str, int] | None]) -> None:
    path = _cache_file(build_id)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"schema": CACHE_SCHEMA, "structs": structs}, f, sort_keys=True)
        os.replace(tmp, path)  # atomic: concurrent gotel processes never read half a file
    except OSError as e:
        log.debug("cannot write DWARF cache %s: %s", path, e)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
