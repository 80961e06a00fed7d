"""Function addresses, sizes and uprobe file offsets, diffed against `go tool nm` / objdump.

A stripped binary is checked against its unstripped twin: the same flags except `-s -w`.
That the two share their text layout is itself checked (every symbol of the twin, not just
the probed ones), since the differential rests on it.
"""

from __future__ import annotations

import shutil
import time

import pytest
from goelf_testing import (
    FULL_TABLE,
    LOCAL,
    PROBED,
    VARIANTS,
    gnu_objdump,
    go_nm,
    go_objdump,
    readelf_loads,
    unstripped,
    vaddr_to_offset,
    variant_id,
)

from gotel.goelf import open_binary


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_probed_functions_match_the_symbol_table(httpserver, variant) -> None:
    toolchain, flavor = variant
    built = httpserver(toolchain, flavor)
    twin = httpserver(toolchain, unstripped(flavor))
    nm = go_nm(twin.path)
    loads = readelf_loads(built.path)
    with open_binary(built.path) as b:
        found = b.functions(PROBED)
        assert sorted(found) == sorted(PROBED)
        for name, fn in found.items():
            assert fn.name == name
            assert (fn.address, fn.size) == nm[name], name
            assert fn.file_offset == vaddr_to_offset(loads, fn.address), name


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_file_offset_holds_the_code_at_the_address(httpserver, variant) -> None:
    """binutils reads the bytes at each address through the section headers (not segments)."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) not installed")
    toolchain, flavor = variant
    built = httpserver(toolchain, flavor)
    raw = built.path.read_bytes()
    with open_binary(built.path) as b:
        for name, fn in b.functions(PROBED).items():
            insns = gnu_objdump(built.path, fn.address, fn.address + fn.size)
            assert insns[0].address == fn.address, name
            code = b"".join(i.encoding for i in insns)
            assert len(code) == fn.size, name
            assert raw[fn.file_offset : fn.file_offset + fn.size] == code, name


@pytest.mark.parametrize("variant", [v for v in VARIANTS if "stripped" not in v[1]],
                         ids=variant_id)
def test_code_matches_go_tool_objdump(httpserver, variant) -> None:
    # go tool objdump needs a symbol table: unstripped builds only.
    toolchain, flavor = variant
    built = httpserver(toolchain, flavor)
    listing = go_objdump(built.path, PROBED)
    raw = built.path.read_bytes()
    with open_binary(built.path) as b:
        for name, fn in b.functions(PROBED).items():
            insns = listing[name]
            code = b"".join(i.encoding for i in insns)
            assert insns[0].address == fn.address
            assert len(code) == fn.size
            assert raw[fn.file_offset : fn.file_offset + len(code)] == code, name


@pytest.mark.parametrize("variant", FULL_TABLE, ids=variant_id)
def test_every_go_function_resolves_like_the_symbol_table(httpserver, variant) -> None:
    toolchain, flavor = variant
    built = httpserver(toolchain, flavor)
    nm = go_nm(httpserver(toolchain, unstripped(flavor)).path)
    # ".abi0" names are assembly bodies / ABI wrappers the pclntab names without the suffix;
    # C functions from external linking have no pclntab entry at all.
    names = [n for n in nm if not n.endswith(".abi0") and ("." in n or "/" in n)]
    with open_binary(built.path) as b:
        assert not b.has_symtab
        found = b.functions(names)
        missing = sorted(set(names) - set(found))
        assert len(missing) <= len(names) // 100, missing[:20]
        wrong = {n: (hex(f.address), f.size, hex(nm[n][0]), nm[n][1]) for n, f in found.items()
                 if (f.address, f.size) != nm[n] and nm[n][1] != 0}
        assert not wrong, list(wrong.items())[:10]
        assert len(found) > 4000


def test_unknown_names_are_left_out(httpserver) -> None:
    for flavor in ("default", "stripped"):
        with open_binary(httpserver(LOCAL, flavor).path) as b:
            assert b.function("main.doesNotExist") is None
            assert b.function("net/http.serverHandler") is None  # a prefix, not a function
            assert b.function("") is None
            assert list(b.functions(["main.main", "nope.nope"])) == ["main.main"]


def test_abi0_names_resolve_in_stripped_binaries(httpserver) -> None:
    nm = go_nm(httpserver(LOCAL, "default").path)
    names = [n for n in ("runtime.osyield.abi0", "runtime.osinit.abi0", "runtime.reflectcall.abi0")
             if n in nm]
    assert names
    with open_binary(httpserver(LOCAL, "stripped").path) as b:
        for name in names:
            fn = b.function(name)
            assert fn is not None and (fn.address, fn.size) == nm[name], name


@pytest.mark.parametrize("flavor", ["default", "stripped"])
def test_lookups_are_cheap(httpserver, flavor: str) -> None:
    path = httpserver(LOCAL, flavor).path
    start = time.perf_counter()
    with open_binary(path) as b:
        assert len(b.functions(PROBED)) == len(PROBED)
    assert time.perf_counter() - start < 0.5  # measured 5-10 ms on a 9 MB binary
