"""Struct field offsets for a binary: its own DWARF first, then gotel's offsets database.

The database is consulted by exact module version only (std: the Go release). A version it
scanned gives the offset, or "the field does not exist in this version"; any other version
leaves the offset missing, with a reason naming the version and the command that fixes it.
Nothing is interpolated between versions: a probe never reads through a guessed offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gotel.goelf import GoBinary
from gotel.offsets import database
from gotel.offsets.fields import STD, StructField
from gotel.offsets.versions import go_release

KEEP_DWARF = "keep DWARF in the binary (build without -ldflags=-w)"


@dataclass(frozen=True)
class Resolved:
    offset: int | None
    source: str  # "dwarf", "database", "unlinked" or "missing"
    # offset None with source "dwarf"/"database": the field does not exist in this version;
    # "unlinked": the field's module is not in the binary (an optional field of another one).
    note: str = ""  # why the offset is None ("Go 1.26.9: ..."; absent: "Go 1.21.0")
    fix: str = ""  # what fills a missing offset: a command or a build change

    @property
    def absent(self) -> bool:
        return self.offset is None and self.source != "missing"


def module_version(binary: GoBinary, module: str) -> str | None:
    """The version of `module` linked into the binary; std's is the Go version.

    "" when buildinfo cannot tell: it holds no module list at all (some externally linked
    builds), so the module may be linked at an unknown version.
    """
    if module == STD:
        return binary.go_version
    if binary.main and binary.main.path == module:
        return binary.main.version
    version = binary.modules.get(module)
    if version is None and no_module_list(binary):
        return ""
    return version


def no_module_list(binary: GoBinary) -> bool:
    return binary.main is None and not binary.modules


def resolve_fields(binary: GoBinary, fields: Iterable[StructField],
                   db: database.OffsetsDatabase | None = None) -> dict[StructField, Resolved]:
    wanted = list(fields)
    found = binary.field_offsets((f.struct, f.field) for f in wanted) if binary.has_dwarf else {}
    result: dict[StructField, Resolved] = {}
    loaded: list[database.OffsetsDatabase | str] = [db] if db is not None else []
    for f in wanted:
        offset = found.get((f.struct, f.field))
        if offset is not None:
            result[f] = Resolved(offset, "dwarf")
            continue
        if not loaded:
            loaded.append(_load_database())
        result[f] = _from_database(binary, f, loaded[0])
    return result


def _load_database() -> database.OffsetsDatabase | str:
    path = database.default_path()
    try:
        return database.load_cached(path)
    except database.DatabaseError as e:
        return f"gotel's offsets database is unreadable ({e})"


def _from_database(binary: GoBinary, f: StructField,
                   db: database.OffsetsDatabase | str) -> Resolved:
    where = "the binary's DWARF does not describe it" if binary.has_dwarf else (
        "the binary has no DWARF")
    version = module_version(binary, f.module)
    if version is None:
        return Resolved(None, "unlinked", f"{f.module} is not linked into this binary")

    label = _label(f.module, version)
    key, why_not = _database_key(binary, f.module, version)
    if key is None:
        return Resolved(None, "missing", f"{label}: {where}, and {why_not}", KEEP_DWARF)
    if isinstance(db, str):
        return Resolved(None, "missing", f"{label}: {where}, and {db}", KEEP_DWARF)
    look = db.lookup(f.module, key, f.key)
    if look.status is database.Status.OFFSET:
        return Resolved(look.offset, "database")
    if look.status is database.Status.ABSENT:
        return Resolved(None, "database", label)
    fix = "gotel offsets update " + (f"--go {key}" if f.module == STD else f"--module "
                                     f"{f.module}@{key}")
    known = {
        "never scanned": "gotel's offsets database never scanned this version",
        "scanned before this field was declared":
            "gotel's offsets database scanned this version before the field was declared",
    }.get(look.why, f"gotel's offsets database has no value: {look.why}")
    return Resolved(None, "missing", f"{label}: {where}, and {known}", fix)


def _database_key(binary: GoBinary, module: str, version: str) -> tuple[str | None, str]:
    """The database version key, or None and why the database cannot answer."""
    if module == STD:
        release = go_release(version)
        if release is None:
            return None, ("the offsets database only covers default builds of Go releases "
                          "(no GOEXPERIMENT, no development or rc builds)")
        return release, ""
    if version == "":
        return None, ("its buildinfo has no module list (some externally linked builds "
                      "omit it), so the module's version is unknown")
    replaced = binary.replaced.get(module)
    if replaced is not None:
        return None, (f"the module is replaced by {replaced.path} {replaced.version}; the "
                      "offsets database only covers published versions")
    if binary.main is not None and binary.main.path == module:
        return None, "it is the binary's main module, which the offsets database does not cover"
    return version, ""


def _label(module: str, version: str) -> str:
    if module == STD:
        return f"Go {version.removeprefix('go')}" if version else "Go (unknown version)"
    return f"{module} {version}" if version else f"{module} (version unknown)"


def missing_offsets_reason(missing: Mapping[str, Resolved]) -> str:
    """One line for a probe skipped for want of required fields: field, version, fix."""
    items = list(missing.items())
    key, first = items[0]
    more = f" and {len(items) - 1} more" if len(items) > 1 else ""
    if first.absent:
        return f"{key}{more} does not exist in {first.note} (per gotel's offsets database)"
    fix = f"; fix: {first.fix}" if first.fix else ""
    return f"no offsets for {key}{more} ({first.note}){fix}"
