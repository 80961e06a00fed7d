"""Just enough ELF64 little-endian reading for Go binaries: sections, PT_LOAD segments, notes.

Hand-rolled over an mmap instead of pyelftools: opening is a few struct unpacks, every
malformed input becomes a gotel error, and big tables are read in bulk by the callers.
"""

from __future__ import annotations

import logging
import mmap
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from gotel.errors import GoVersionUnsupportedError, NotAnElfError, TargetError

log = logging.getLogger(__name__)

ELF_MAGIC = b"\x7fELF"
EM_X86_64 = 62
ET_EXEC, ET_DYN = 2, 3
PT_LOAD = 1
PT_NOTE = 4
PF_X = 1
SHT_NOTE = 7
SHT_NOBITS = 8
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB = 1

# e_machine -> GOARCH, for the "wrong architecture" message only.
_ARCH_NAMES = {
    3: "386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm", 62: "amd64",
    183: "arm64", 243: "riscv64", 258: "loong64",
}

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_CHDR = struct.Struct("<IIQQ")


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


@dataclass(frozen=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


class ElfImage:
    """A read-only mapping of one ELF64 file with its section and segment tables parsed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = None
        self.data: mmap.mmap | bytes = b""
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                # open() would block on a FIFO; devices and sockets are not programs either
                raise NotAnElfError(f"{self.path}: not a regular file; give an executable file")
            self._file = open(self.path, "rb")  # owned by this object: see close()
        except FileNotFoundError:
            raise TargetError(f"{self.path}: no such file; check the path") from None
        except PermissionError as e:
            from gotel.privileges import CAP_DAC_READ_SEARCH, lacking

            raise lacking(CAP_DAC_READ_SEARCH, f"{self.path}: cannot read") or NotAnElfError(
                f"{self.path}: cannot read ({e.strerror}); check permissions"
            ) from None
        except OSError as e:
            raise NotAnElfError(
                f"{self.path}: cannot read ({e.strerror}); check permissions"
            ) from None
        try:
            self._map()
            self._parse()
        except BaseException:
            self.close()
            raise

    # --- setup -------------------------------------------------------------------------
    def _map(self) -> None:
        assert self._file is not None
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size == 0:
                raise NotAnElfError(f"{self.path}: empty file, not an ELF executable")
            self.data = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise NotAnElfError(
                f"{self.path}: cannot map file ({e}); is it a regular file?"
            ) from None

    def _parse(self) -> None:
        d = self.data
        if len(d) < 20 or d[:4] != ELF_MAGIC:
            raise NotAnElfError(f"{self.path}: not an ELF file; give a Linux Go executable")
        ei_class, ei_data = d[4], d[5]
        machine = struct.unpack_from("<H" if ei_data == 1 else ">H", d, 18)[0]
        if ei_class != 2 or ei_data != 1 or machine != EM_X86_64:
            arch = _ARCH_NAMES.get(machine, f"e_machine {machine}")
            if ei_class == 1 and machine == EM_X86_64:
                arch = "x32"
            if ei_data == 1 and machine == 21:
                arch = "ppc64le"
            # Not ours to parse further; the caller reports the architecture if it is Go.
            self.arch, self.elf_type, self.entry = arch, 0, 0
            self.segments, self.section_list, self.sections = [], [], {}
            return
        self.arch = "amd64"
        if len(d) < _EHDR.size:
            raise NotAnElfError(f"{self.path}: truncated ELF header; the file is damaged")
        (_, self.elf_type, _, _, self.entry, phoff, shoff, _, _, phentsize, phnum, shentsize,
         shnum, shstrndx) = _EHDR.unpack_from(d, 0)
        self.segments = self._read_segments(phoff, phentsize, phnum)
        self.section_list = self._read_sections(shoff, shentsize, shnum, shstrndx)
        self.sections: dict[str, Section] = {}
        for sec in self.section_list:
            self.sections.setdefault(sec.name, sec)

    def _read_segments(self, phoff: int, entsize: int, num: int) -> list[Segment]:
        if num == 0:
            return []
        if entsize != _PHDR.size or phoff + num * entsize > len(self.data):
            raise NotAnElfError(f"{self.path}: truncated program headers; the file is damaged")
        segs = []
        for i in range(num):
            p_type, flags, offset, vaddr, _, filesz, memsz, _ = _PHDR.unpack_from(
                self.data, phoff + i * entsize
            )
            segs.append(Segment(p_type, flags, offset, vaddr, filesz, memsz))
        return segs

    def _read_sections(self, shoff: int, entsize: int, num: int, strndx: int) -> list[Section]:
        if num == 0 or shoff == 0:
            return []  # section headers stripped (sstrip): callers fall back to segments
        if entsize != _SHDR.size or shoff + num * entsize > len(self.data):
            raise NotAnElfError(f"{self.path}: truncated section headers; the file is damaged")
        raw = [_SHDR.unpack_from(self.data, shoff + i * entsize) for i in range(num)]
        names = b""
        if 0 < strndx < num:
            _, _, _, _, off, size, _, _, _, _ = raw[strndx]
            names = bytes(self.data[off : off + size])
        out: list[Section] = []
        for name_off, typ, flags, addr, off, size, link, _, _, _ in raw:
            end = names.find(b"\0", name_off)
            name = names[name_off:end].decode("utf-8", "replace") if end >= 0 else ""
            if typ != SHT_NOBITS and off + size > len(self.data):
                raise NotAnElfError(
                    f"{self.path}: section {name or '?'} runs past the end of the file;"
                    " the file is truncated"
                )
            out.append(Section(name, typ, flags, addr, off, size, link))
        return out

    # --- reading -----------------------------------------------------------------------
    @property
    def pie(self) -> bool:
        return self.elf_type == ET_DYN

    def loads(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_LOAD]

    def section(self, name: str) -> Section | None:
        return self.sections.get(name)

    def section_bytes(self, sec: Section) -> bytes:
        if sec.type == SHT_NOBITS:
            return b""
        return bytes(self.data[sec.offset : sec.offset + sec.size])

    def section_by_index(self, index: int) -> Section | None:
        return self.section_list[index] if 0 <= index < len(self.section_list) else None

    def debug_section(self, name: str) -> bytes | None:
        """The uncompressed bytes of `.debug_<name>`: SHF_COMPRESSED zlib or old `.zdebug_`."""
        sec = self.sections.get(".debug_" + name)
        if sec is not None:
            raw = self.section_bytes(sec)
            if not sec.flags & SHF_COMPRESSED:
                return raw
            if len(raw) < _CHDR.size:
                return None
            ch_type, _, ch_size, _ = _CHDR.unpack_from(raw)
            if ch_type != ELFCOMPRESS_ZLIB:
                log.info("%s: .debug_%s uses compression type %d; ignoring DWARF",
                         self.path, name, ch_type)
                return None
            return _inflate(raw[_CHDR.size :], ch_size)
        sec = self.sections.get(".zdebug_" + name)
        if sec is not None:
            raw = self.section_bytes(sec)
            if raw[:4] != b"ZLIB" or len(raw) < 12:
                return raw  # a .zdebug section may be stored uncompressed
            return _inflate(raw[12:], struct.unpack_from(">Q", raw, 4)[0])
        return None

    def has_debug(self, name: str) -> bool:
        return ".debug_" + name in self.sections or ".zdebug_" + name in self.sections

    def segment_for_vaddr(self, addr: int) -> Segment | None:
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= addr < seg.vaddr + seg.filesz:
                return seg
        return None

    def vaddr_to_offset(self, addr: int) -> int | None:
        seg = self.segment_for_vaddr(addr)
        return None if seg is None else addr - seg.vaddr + seg.offset

    def offset_to_vaddr(self, offset: int) -> int | None:
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        return None

    def read_vaddr(self, addr: int, size: int) -> bytes | None:
        off = self.vaddr_to_offset(addr)
        if off is None or off + size > len(self.data):
            return None
        return bytes(self.data[off : off + size])

    def notes(self) -> list[tuple[bytes, int, bytes]]:
        """(owner, type, desc) of every note in SHT_NOTE sections or PT_NOTE segments."""
        areas = [(s.offset, s.size) for s in self.section_list if s.type == SHT_NOTE]
        if not areas:
            areas = [(s.offset, s.filesz) for s in self.segments if s.type == PT_NOTE]
        out = []
        for start, size in areas:
            pos, end = start, min(start + size, len(self.data))
            while pos + 12 <= end:
                namesz, descsz, typ = struct.unpack_from("<III", self.data, pos)
                name_at = pos + 12
                desc_at = name_at + _align4(namesz)
                nxt = desc_at + _align4(descsz)
                if nxt > end:
                    break
                owner = bytes(self.data[name_at : name_at + namesz]).rstrip(b"\0")
                out.append((owner, typ, bytes(self.data[desc_at : desc_at + descsz])))
                pos = nxt
        return out

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            self.data.close()
        self.data = b""
        if self._file is not None:
            self._file.close()
            self._file = None


def wrong_arch_error(path: Path, arch: str) -> GoVersionUnsupportedError:
    return GoVersionUnsupportedError(
        f"{path}: gotel supports linux/amd64 Go binaries; this one is {arch}"
    )


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _inflate(data: bytes, size: int) -> bytes | None:
    try:
        out = zlib.decompress(data)
    except zlib.error:
        return None
    return out if len(out) == size else None
