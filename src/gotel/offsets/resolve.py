"""Struct field offsets for a binary: its own DWARF first, then gotel's database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gotel.goelf import GoBinary
from gotel.instrumentation.probe import STD, StructField


@dataclass(frozen=True)
class Resolved:
    offset: int | None
    source: str  # "dwarf", "database" or "missing"


def module_version(binary: GoBinary, module: str) -> str | None:
    """The version of `module` linked into the binary; std's is the Go version."""
    if module == STD:
        return binary.go_version
    if binary.main and binary.main.path == module:
        return binary.main.version
    return binary.modules.get(module)


def resolve_fields(binary: GoBinary, fields: Iterable[StructField]) -> dict[StructField, Resolved]:
    wanted = list(fields)
    found = binary.field_offsets((f.struct, f.field) for f in wanted) if binary.has_dwarf else {}
    result: dict[StructField, Resolved] = {}
    for f in wanted:
        offset = found.get((f.struct, f.field))
        result[f] = Resolved(offset, "dwarf") if offset is not None else Resolved(None, "missing")
    return result
