"""GoBinary: everything gotel learns from a Go executable file, computed lazily and cached.

A pure function of the file: no process, no kernel. Errors are gotel errors with one line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType

from gotel.errors import GotelError, GoVersionUnsupportedError, NotAnElfError, NotGoBinaryError
from gotel.goelf import buildinfo, dwarf
from gotel.goelf.elffile import ElfImage, wrong_arch_error
from gotel.goelf.pclntab import MAGIC_12, MAGIC_116, Pclntab, PclntabError
from gotel.goelf.returns import code_length, ret_offsets
from gotel.goelf.symbols import SymbolTable

log = logging.getLogger(__name__)

MIN_GO = (1, 17)  # register ABI on amd64: arguments in registers, g in R14
_DECODE_ERRORS = (ValueError, IndexError, struct.error, OverflowError)


@dataclass(frozen=True)
class Module:
    path: str
    version: str  # "(devel)" for a main module built from a checkout


@dataclass(frozen=True)
class Function:
    name: str
    address: int  # virtual address of the entry
    size: int  # bytes of code, without alignment padding
    file_offset: int  # what a uprobe takes: vaddr - p_vaddr + p_offset of its PT_LOAD


class GoBinary:
    """Analysis of one Go ELF file. Use as a context manager or call close()."""

    def __init__(self, img: ElfImage, info: buildinfo.BuildInfo | None,
                 pclntab: Pclntab | None) -> None:
        self._img = img
        self._pclntab = pclntab
        self._symtab = SymbolTable(img)
        self.path: Path = img.path
        self.go_version: str = info.go_version if info else ""
        main = info.main if info else None
        self.main: Module | None = Module(main.path, main.version) if main else None
        deps = info.deps if info else []
        self.modules: dict[str, str] = {d.path: d.version for d in deps}
        # A replaced dependency keeps its required version in `modules`; the code linked in
        # is the replacement's, given here ("(devel)"-like versions for local directories).
        self.replaced: dict[str, Module] = {
            d.path: Module(d.replace.path, d.replace.version) for d in deps if d.replace
        }
        self.build_settings: dict[str, str] = dict(info.settings) if info else {}
        self.has_symtab: bool = self._symtab.present
        self.has_dwarf: bool = img.has_debug("info") and img.has_debug("abbrev")
        self.pie: bool = img.pie
        self._funcs: dict[str, Function | None] = {}
        self._rets: dict[Function, list[int]] = {}
        self._structs: dict[str, dict[str, int] | None] = {}
        self._dwarf: dwarf.DwarfIndex | None = None  # decompressed once, on first need

    def __repr__(self) -> str:
        return f"GoBinary({str(self.path)!r}, {self.go_version or 'go?'})"

    @cached_property
    def build_id(self) -> str:
        """Go build id, else GNU build id, else the file's sha256: a cache key for this file."""
        go = gnu = ""
        for owner, typ, desc in self._img.notes():
            if owner == b"Go" and typ == 4 and not go:
                go = desc.rstrip(b"\0").decode("ascii", "replace")
            elif owner == b"GNU" and typ == 3 and not gnu:
                gnu = desc.hex()
        if go:
            return go
        if gnu:
            return "gnu-" + gnu
        return "sha256-" + hashlib.sha256(self._img.data).hexdigest()

    # --- functions ---------------------------------------------------------------------
    def function(self, name: str) -> Function | None:
        if name not in self._funcs:
            try:
                self._funcs[name] = self._resolve(name)
            except (PclntabError, *_DECODE_ERRORS) as e:
                log.warning("%s: cannot resolve %s: %s", self.path, name, e)
                self._funcs[name] = None
        return self._funcs[name]

    def functions(self, names: Iterable[str]) -> dict[str, Function]:
        out = {}
        for name in names:
            fn = self.function(name)
            if fn is not None:
                out[name] = fn
        return out

    def _resolve(self, name: str) -> Function | None:
        sym = self._symtab.lookup(name)
        pc = None
        if sym is None or sym.size == 0:
            # Stripped binary (or an assembly symbol without size, or only a ".abi0" name
            # in .symtab): the pclntab knows every Go function.
            pc = self._pclntab.lookup(name) if self._pclntab else None
        if sym is not None and (sym.size or pc is None):
            address, size = sym.address, sym.size
        elif pc is not None:
            address = pc.entry
            code = self._img.read_vaddr(pc.entry, pc.end - pc.entry)
            if code is None:
                log.warning("%s: %s at %#x is outside the file's segments", self.path, name,
                            pc.entry)
                return None
            size = code_length(code)
        else:
            return None
        offset = self._img.vaddr_to_offset(address)
        if offset is None:
            log.warning("%s: %s at %#x is outside the file's segments", self.path, name, address)
            return None
        return Function(name, address, size, offset)

    def function_entries_ending_with(self, suffix: str) -> dict[int, str]:
        """Entry address -> name of every Go function whose name ends with `suffix`."""
        try:
            funcs = self._pclntab.ending_with(suffix) if self._pclntab else []
        except (PclntabError, *_DECODE_ERRORS) as e:
            log.warning("%s: cannot search functions named *%s: %s", self.path, suffix, e)
            return {}
        return {f.entry: f.name for f in funcs}

    def return_offsets(self, fn: Function) -> list[int]:
        """File offsets of every RET in `fn` (empty when it ends in a tail call)."""
        if fn not in self._rets:
            code = self._img.read_vaddr(fn.address, fn.size) or b""
            self._rets[fn] = [fn.file_offset + off for off in ret_offsets(code)]
        return list(self._rets[fn])

    # --- DWARF -------------------------------------------------------------------------
    def field_offsets(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Byte offsets of (struct, field) pairs this binary's DWARF describes."""
        pairs = list(wanted)
        if not self.has_dwarf or not pairs:
            return {}
        missing = {s for s, _ in pairs} - self._structs.keys()
        if missing:
            self._load_structs(missing)
        out = {}
        for struct_name, field in pairs:
            fields = self._structs.get(struct_name)
            if fields is not None and field in fields:
                out[(struct_name, field)] = fields[field]
        return out

    def _load_structs(self, names: set[str]) -> None:
        cached = dwarf.load_cache(self.build_id)
        for name in names & cached.keys():
            self._structs[name] = cached[name]
        todo = names - cached.keys()
        if not todo:
            return
        try:
            if self._dwarf is None:
                self._dwarf = dwarf.DwarfIndex(self._img)
            found = self._dwarf.structs(todo)
        except (dwarf.DwarfError, *_DECODE_ERRORS) as e:
            log.warning("%s: unreadable DWARF (%s); struct offsets must come from the offsets "
                        "database", self.path, e)
            found = dict.fromkeys(todo)
            self._structs.update(found)
            return  # not cached: a fixed gotel may read it
        self._structs.update(found)
        dwarf.save_cache(self.build_id, {**cached, **found})

    # --- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        self._img.close()

    def __enter__(self) -> GoBinary:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_binary(path: str | os.PathLike[str]) -> GoBinary:
    """Open and check a Go executable; raises a GotelError subclass for anything unusable."""
    img = ElfImage(path)
    try:
        return _analyse(img)
    except GotelError:
        img.close()
        raise
    except (PclntabError, buildinfo.BuildInfoError, *_DECODE_ERRORS) as e:
        img.close()
        raise NotAnElfError(f"{img.path}: malformed Go binary ({e}); the file may be "
                            "truncated or damaged") from None
    except BaseException:
        img.close()
        raise


def _analyse(img: ElfImage) -> GoBinary:
    if img.arch != "amd64":
        if img.data.find(buildinfo.MAGIC) >= 0:
            raise wrong_arch_error(img.path, img.arch)
        raise _not_go(img)
    blob = buildinfo.find_blob(img)
    info = None
    if blob is not None:
        try:
            info = buildinfo.parse(img, blob)
        except buildinfo.BuildInfoError as e:
            raise NotGoBinaryError(f"{img.path}: build info is damaged ({e}); rebuild the "
                                   "binary or check the file was copied whole") from None
    pclntab = Pclntab.locate(img)
    if info is None and pclntab is None:
        raise _not_go(img)
    _check_version(img, info, pclntab)
    if pclntab is None and not SymbolTable(img).present:
        raise NotGoBinaryError(f"{img.path}: Go binary without function table or symbols; "
                               "the file is damaged")
    return GoBinary(img, info, pclntab)


def _not_go(img: ElfImage) -> NotGoBinaryError:
    return NotGoBinaryError(f"{img.path}: not a Go binary (no Go build info or pclntab); "
                            "give a program built with the Go toolchain")


def _check_version(img: ElfImage, info: buildinfo.BuildInfo | None,
                   pclntab: Pclntab | None) -> None:
    if info is not None:
        m = re.search(r"go(\d+)\.(\d+)", info.go_version)
        if m and (int(m.group(1)), int(m.group(2))) < MIN_GO:
            raise _too_old(img, info.go_version)
    elif pclntab is not None and pclntab.magic in (MAGIC_12, MAGIC_116):
        # No build info to tell 1.16 from 1.17: refuse rather than guess an ABI.
        raise _too_old(img, f"an old Go ({pclntab.go_era})")
    if pclntab is not None and pclntab.magic == MAGIC_12 and info is not None:
        raise _too_old(img, info.go_version)


def _too_old(img: ElfImage, version: str) -> GoVersionUnsupportedError:
    return GoVersionUnsupportedError(
        f"{img.path}: built with {version}; gotel needs Go 1.17 or newer (register ABI), "
        "rebuild it with a newer Go"
    )
