"""Go's pclntab: the function table every Go binary keeps, stripped or not.

Only the parts needed to find a function by name are decoded: the header, the functab
(entry offset, _func offset pairs sorted by address) and each _func's name offset. Names are
matched as bytes in funcnametab, so nothing is decoded for functions nobody asked about.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from gotel.goelf.elffile import PF_X, ElfImage

log = logging.getLogger(__name__)

MAGIC_12 = 0xFFFFFFFB  # Go 1.2-1.15
MAGIC_116 = 0xFFFFFFFA  # Go 1.16-1.17
MAGIC_118 = 0xFFFFFFF0  # Go 1.18-1.19
MAGIC_120 = 0xFFFFFFF1  # Go 1.20+
_GO_BY_MAGIC = {MAGIC_12: "go1.2-1.15", MAGIC_116: "go1.16-1.17", MAGIC_118: "go1.18-1.19",
                MAGIC_120: "go1.20+"}
_PTR = 8
FUNCID_NORMAL = 0  # abi.FuncIDNormal: 0 in every release; other numbers moved around
FUNCFLAG_ASM = 0x4  # abi.FuncFlagAsm, the byte after funcID

# Offset of funcID inside _func: 1.20 inserted startLine (int32) before it.
_FUNCID_AT = {MAGIC_116: 8 + 8 * 4, MAGIC_118: 9 * 4, MAGIC_120: 10 * 4}
# runtime.moduledata: pcHeader, six slices, findfunctab, minpc, maxpc, text (unchanged
# from Go 1.16, when pcHeader arrived, to 1.26).
_MD_WORDS = 24
_MD_FUNCNAMETAB, _MD_MINPC, _MD_TEXT = 1, 20, 22


class PclntabError(ValueError):
    """The table is present but inconsistent; the caller words the user-facing error."""


@dataclass(frozen=True)
class PcFunc:
    name: str
    entry: int  # virtual address
    end: int  # next function's entry: includes the INT3 padding after this one
    func_id: int
    flag: int


def header_magic(raw: bytes) -> int | None:
    """The magic if `raw` starts like a 64-bit little-endian x86 pclntab header."""
    if len(raw) < 8 or raw[4:8] != b"\x00\x00\x01\x08":  # pad, pad, minLC=1, ptrSize=8
        return None
    (magic,) = struct.unpack_from("<I", raw)
    return magic if magic in _GO_BY_MAGIC else None


def magic_era(magic: int) -> str:
    return _GO_BY_MAGIC.get(magic, "unknown")


class Pclntab:
    def __init__(self, img: ElfImage, data: bytes, vaddr: int) -> None:
        self.img = img
        self.data = data
        self.vaddr = vaddr
        magic = header_magic(data)
        if magic is None:
            raise PclntabError("bad pclntab header")
        self.magic = magic
        if magic == MAGIC_12:
            self.nfunc = 0
            return  # too old to decode: callers only need the era for the error message
        words = struct.unpack_from("<7Q", data, 8) if magic == MAGIC_116 else struct.unpack_from(
            "<8Q", data, 8
        )
        self.nfunc = words[0]
        if magic == MAGIC_116:
            self._header_text = 0
            self.funcname_off, _cu, _file, _pc, self.pcln_off = words[2:7]
            self._ftab_fmt, self._ftab_entry = "<QQ", 16
        else:
            self._header_text = words[2]
            self.funcname_off, self.cu_off, _file, _pc, self.pcln_off = words[3:8]
            self._ftab_fmt, self._ftab_entry = "<II", 8
        ftab_end = self.pcln_off + (self.nfunc + 1) * self._ftab_entry
        if not (0 < self.nfunc < 1 << 24 and self.funcname_off < self.pcln_off
                and ftab_end <= len(data)):
            raise PclntabError("pclntab header offsets are out of range")
        self._text_start: int | None = None
        self._by_nameoff: dict[int, list[int]] | None = None
        self._ftab: list[tuple[int, int]] | None = None

    # --- locating ----------------------------------------------------------------------
    @classmethod
    def locate(cls, img: ElfImage) -> Pclntab | None:
        for name in (".gopclntab", ".data.rel.ro.gopclntab"):
            sec = img.section(name)
            if sec is not None and sec.size:
                return cls(img, img.section_bytes(sec), sec.addr)
        # Externally linked PIE: the table sits unnamed inside .data.rel.ro; with no section
        # headers at all, anywhere in a non-executable PT_LOAD. Find the header, then validate.
        areas = [(s.offset, s.size) for s in img.section_list if s.name in (".data.rel.ro",
                                                                              ".rodata")]
        areas += [(s.offset, s.filesz) for s in img.loads() if not s.flags & PF_X]
        for start, size in areas:
            found = cls._scan(img, start, start + size)
            if found is not None:
                return found
        return None

    @classmethod
    def _scan(cls, img: ElfImage, start: int, end: int) -> Pclntab | None:
        for magic in (MAGIC_120, MAGIC_118, MAGIC_116, MAGIC_12):
            needle = struct.pack("<I", magic) + b"\x00\x00\x01\x08"
            pos = img.data.find(needle, start, end)
            while pos >= 0:
                vaddr = img.offset_to_vaddr(pos)
                if pos % 8 == 0 and vaddr is not None:
                    try:
                        tab = cls(img, bytes(img.data[pos:end]), vaddr)
                        if tab.magic == MAGIC_12 or tab._plausible():
                            return tab
                    except (PclntabError, struct.error):
                        pass
                pos = img.data.find(needle, pos + 1, end)
        return None

    def _plausible(self) -> bool:
        """A stray magic in data is rejected unless its functab looks like a real one."""
        ftab = self.ftab()
        probe = ftab[: min(len(ftab), 64)]
        entries = [e for e, _ in probe]
        if entries != sorted(entries):
            return False
        return all(self.pcln_off + f + 8 <= len(self.data) for _, f in probe[:-1])

    # --- decoding ----------------------------------------------------------------------
    @property
    def supported(self) -> bool:
        return self.magic != MAGIC_12

    @property
    def go_era(self) -> str:
        return magic_era(self.magic)

    def ftab(self) -> list[tuple[int, int]]:
        if self._ftab is None:
            start = self.pcln_off
            end = start + (self.nfunc + 1) * self._ftab_entry
            self._ftab = list(struct.iter_unpack(self._ftab_fmt, self.data[start:end]))
        return self._ftab

    @property
    def text_start(self) -> int:
        """Base of the 32-bit entry offsets (Go >= 1.18), i.e. runtime.text."""
        if self._text_start is None:
            self._text_start = self._find_text_start()
        return self._text_start

    def _find_text_start(self) -> int:
        if self.magic == MAGIC_116:
            return 0  # entries are absolute addresses
        if self._header_text:
            return self._header_text  # Go 1.18-1.25 store it in the header
        # Go 1.26 leaves the header field zero: runtime.firstmoduledata.text is the source of
        # truth. The .text section start is not: external linking puts C code before it.
        text = self._moduledata_text()
        if text is not None:
            return text
        sec = self.img.section(".text")
        if sec is not None:
            log.warning("%s: no moduledata found; assuming Go text starts at .text (%#x)",
                        self.img.path, sec.addr)
            return sec.addr
        raise PclntabError("cannot find where Go text starts (no header field, moduledata "
                           "or .text section)")

    def _moduledata_text(self) -> int | None:
        pointer = struct.pack("<Q", self.vaddr)
        sec = self.img.section(".go.module")  # Go 1.26+: moduledata has its own section
        areas = [(sec.offset, sec.offset + sec.size)] if sec is not None else []
        areas += [(s.offset, s.offset + s.filesz) for s in self.img.loads() if s.flags & 0x2]
        for start, end in areas:
            pos = self.img.data.find(pointer, start, end)
            while pos >= 0:
                if (pos - start) % 8 == 0 and pos + _MD_WORDS * 8 <= end:
                    words = struct.unpack_from(f"<{_MD_WORDS}Q", self.img.data, pos)
                    if self._moduledata_ok(words):
                        return words[_MD_TEXT]
                pos = self.img.data.find(pointer, pos + 1, end)
        return None

    def _moduledata_ok(self, words: tuple[int, ...]) -> bool:
        text, minpc = words[_MD_TEXT], words[_MD_MINPC]
        seg = self.img.segment_for_vaddr(text)
        return (words[_MD_FUNCNAMETAB] == self.vaddr + self.funcname_off and text <= minpc
                and seg is not None and bool(seg.flags & PF_X))

    def _name_index(self) -> dict[int, list[int]]:
        if self._by_nameoff is None:
            index: dict[int, list[int]] = {}
            base = self.pcln_off
            name_at = _PTR if self.magic == MAGIC_116 else 4
            unpack = struct.Struct("<i").unpack_from
            data = self.data
            for i, (_, funcoff) in enumerate(self.ftab()[:-1]):
                (nameoff,) = unpack(data, base + funcoff + name_at)
                index.setdefault(nameoff, []).append(i)
            self._by_nameoff = index
        return self._by_nameoff

    def lookup(self, name: str) -> PcFunc | None:
        if not self.supported:
            return None
        funcs = self._candidates(name)
        if funcs:
            return min(funcs, key=_abi_internal_first)
        # The symbol table calls the ABI0 copy "<name>.abi0"; the pclntab does not.
        base = name.removesuffix(".abi0")
        if base != name:
            funcs = self._candidates(base)
            if len(funcs) > 1 or (funcs and funcs[0].flag & FUNCFLAG_ASM):
                f = max(funcs, key=_abi_internal_first)
                return PcFunc(name, f.entry, f.end, f.func_id, f.flag)
        return None

    def ending_with(self, suffix: str) -> list[PcFunc]:
        """Every function whose name ends with `suffix` (e.g. the copies of a closure that
        was inlined into several callers: "<caller>.WithSpanKind.func1")."""
        if not self.supported:
            return []
        needle = suffix.encode() + b"\0"
        start, end = self.funcname_off, self.pcln_off
        index = self._name_index()
        found: list[PcFunc] = []
        pos = self.data.find(needle, start, end)
        while pos >= 0:
            name_start = self.data.rfind(b"\0", start, pos) + 1 or start
            name = self.data[name_start : pos + len(needle) - 1].decode("utf-8", "replace")
            found.extend(self._func(i, name) for i in index.get(name_start - start, ()))
            pos = self.data.find(needle, pos + 1, end)
        return found

    def _candidates(self, name: str) -> list[PcFunc]:
        needle = name.encode() + b"\0"
        start, end = self.funcname_off, self.pcln_off
        index = self._name_index()
        hits: list[int] = []
        pos = self.data.find(needle, start, end)
        while pos >= 0:
            # A tail match ("x.foo" inside "y.x.foo") has its own name offset: harmless.
            hits.extend(index.get(pos - start, ()))
            pos = self.data.find(needle, pos + 1, end)
        return [self._func(i, name) for i in hits]

    def _func(self, i: int, name: str) -> PcFunc:
        ftab = self.ftab()
        entry, funcoff = ftab[i]
        end = ftab[i + 1][0]
        at = self.pcln_off + funcoff + _FUNCID_AT[self.magic]
        base = self.text_start
        return PcFunc(name, base + entry, base + end, self.data[at], self.data[at + 1])


def _abi_internal_first(f: PcFunc) -> tuple[bool, bool, int]:
    """Order copies of one name so that the one the symbol table names plainly comes first.

    Two copies share a name in the pclntab: a Go body (funcID normal) and its ABI0 wrapper,
    or an assembly body (flag Asm, ABI0) and its ABIInternal wrapper. The symbol table
    calls the ABIInternal one "<name>" and the other "<name>.abi0".
    """
    return (bool(f.flag & FUNCFLAG_ASM), f.func_id != FUNCID_NORMAL, f.entry)
