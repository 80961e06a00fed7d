"""pclntab decoding on hand-built tables (every layout, including Go 1.16/1.17's, which no
toolchain we can fetch still produces) and on real binaries with their section headers gone."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from goelf_testing import GO121, LOCAL, PROBED, go_nm

from gotel.goelf import open_binary
from gotel.goelf.elffile import ElfImage
from gotel.goelf.pclntab import MAGIC_116, MAGIC_118, MAGIC_120, Pclntab

WRAPPER = 21  # any funcID other than 0 (abi.FuncIDNormal)
ASM = 0x4


def make_table(magic: int, funcs: list[tuple[str, int, int, int]], text: int, end: int) -> bytes:
    """A pclntab holding `funcs` = (name, entry offset from text, funcID, flag)."""
    names, name_offs = b"", []
    for name, *_ in funcs:
        name_offs.append(len(names))
        names += name.encode() + b"\0"
    nwords = 7 if magic == MAGIC_116 else 8
    funcname_off = 8 + 8 * nwords
    pcln_off = (funcname_off + len(names) + 7) & ~7
    wide = magic == MAGIC_116
    ftab_size = (len(funcs) + 1) * (16 if wide else 8)
    func_size = 44 if wide or magic == MAGIC_120 else 40
    ftab, records = b"", b""
    for i, (_, off, func_id, flag) in enumerate(funcs):
        funcoff = ftab_size + i * func_size
        if wide:
            ftab += struct.pack("<QQ", text + off, funcoff)
            rec = struct.pack("<Qi7I", text + off, name_offs[i], 0, 0, 0, 0, 0, 0, 0)
        else:
            ftab += struct.pack("<II", off, funcoff)
            rec = struct.pack("<Ii7I", off, name_offs[i], 0, 0, 0, 0, 0, 0, 0)
            if magic == MAGIC_120:
                rec += struct.pack("<i", 1)  # startLine
        records += rec + bytes([func_id, flag, 0, 0])
    ftab += struct.pack("<QQ", text + end, 0) if wide else struct.pack("<II", end, 0)
    if wide:
        words = [len(funcs), 0, funcname_off, pcln_off, pcln_off, pcln_off, pcln_off]
    else:
        words = [len(funcs), 0, text, funcname_off, pcln_off, pcln_off, pcln_off, pcln_off]
    header = struct.pack("<IBBBB", magic, 0, 0, 1, 8) + struct.pack(f"<{nwords}Q", *words)
    body = header + names
    return body + b"\0" * (pcln_off - len(body)) + ftab + records


FUNCS = [
    ("main.main", 0x00, 0, 0),
    ("runtime.osyield", 0x40, 0, ASM),  # assembly body: ".abi0" in the symbol table
    ("pkg.work", 0x80, 0, 0),  # Go body
    ("runtime.osyield", 0xC0, WRAPPER, 0),  # its ABIInternal wrapper: the plain name
    ("pkg.work", 0x100, WRAPPER, 0),  # its ABI0 wrapper: "pkg.work.abi0"
    ("x.main.main", 0x140, 0, 0),  # ends like another name
]


@pytest.mark.parametrize("magic", [MAGIC_116, MAGIC_118, MAGIC_120])
def test_lookup_on_every_layout(magic: int) -> None:
    text = 0x401000
    tab = Pclntab(None, make_table(magic, FUNCS, text, 0x180), 0x500000)  # type: ignore[arg-type]
    assert tab.text_start == (0 if magic == MAGIC_116 else text)

    def at(name: str) -> tuple[int, int] | None:
        f = tab.lookup(name)
        return None if f is None else (f.entry - text, f.end - text)

    assert at("main.main") == (0x00, 0x40)
    assert at("x.main.main") == (0x140, 0x180)  # the last one ends at the table's end entry
    assert at("pkg.work") == (0x80, 0xC0)
    assert at("pkg.work.abi0") == (0x100, 0x140)
    assert at("runtime.osyield") == (0xC0, 0x100)
    assert at("runtime.osyield.abi0") == (0x40, 0x80)
    assert at("main.main.abi0") is None  # one copy, not assembly: no ABI0 twin
    assert at("main") is None and at("nope") is None and at("") is None


@pytest.mark.parametrize("magic", [MAGIC_116, MAGIC_118, MAGIC_120])
def test_functions_by_name_suffix_on_every_layout(magic: int) -> None:
    text = 0x401000
    tab = Pclntab(None, make_table(magic, FUNCS, text, 0x180), 0x500000)  # type: ignore[arg-type]

    def ending(suffix: str) -> list[tuple[str, int]]:
        return sorted((f.name, f.entry - text) for f in tab.ending_with(suffix))

    assert ending("main.main") == [("main.main", 0x00), ("x.main.main", 0x140)]
    assert ending(".main") == [("main.main", 0x00), ("x.main.main", 0x140)]
    assert ending("osyield") == [("runtime.osyield", 0x40), ("runtime.osyield", 0xC0)]
    assert ending("nope") == [] and ending("main.mai") == []


def _without_section_headers(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    struct.pack_into("<Q", data, 0x28, 0)  # e_shoff
    struct.pack_into("<HHH", data, 0x3C, 0, 0, 0)  # e_shnum, e_shstrndx (and e_shentsize)
    struct.pack_into("<H", data, 0x3A, 0)
    dst.write_bytes(bytes(data))
    return dst


BARE = [(LOCAL, "stripped"), (LOCAL, "ext-stripped"), (LOCAL, "pie-stripped"),
        (GO121, "stripped"), (GO121, "ext-pie-stripped")]


@pytest.mark.parametrize(("toolchain", "flavor"), BARE)
def test_binary_without_section_headers(httpserver, tmp_path: Path, toolchain: str,
                                        flavor: str) -> None:
    """sstrip-style files: build info, pclntab and moduledata found by scanning segments."""
    src = httpserver(toolchain, flavor).path
    bare = _without_section_headers(src, tmp_path / "bare")
    with open_binary(src) as ref, open_binary(bare) as b:
        assert (b.go_version, b.main, b.modules, b.build_settings) == (
            ref.go_version, ref.main, ref.modules, ref.build_settings)
        assert b.build_id == ref.build_id  # from PT_NOTE
        want = ref.functions(PROBED)
        got = b.functions(PROBED)
        assert got == want
        for fn in got.values():
            assert b.return_offsets(fn) == ref.return_offsets(fn)


def test_text_start_of_go_1_26_external_linking_is_not_the_text_section(httpserver) -> None:
    """Why moduledata: with external linking C code precedes runtime.text in .text."""
    nm = go_nm(httpserver(LOCAL, "ext").path)
    img = ElfImage(httpserver(LOCAL, "ext-stripped").path)
    try:
        tab = Pclntab.locate(img)
        assert tab is not None and tab.magic == MAGIC_120
        assert struct.unpack_from("<Q", tab.data, 24)[0] == 0  # Go 1.26: header field unused
        assert tab.text_start == nm["runtime.text"][0]
        text = img.section(".text")
        assert text is not None and text.addr < tab.text_start
    finally:
        img.close()
