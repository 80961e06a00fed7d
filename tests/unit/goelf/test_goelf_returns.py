"""RET sites as file offsets, diffed against the RETs `go tool objdump` lists."""

from __future__ import annotations

import shutil

import pytest
from goelf_testing import (
    LOCAL,
    PROBED,
    VARIANTS,
    gnu_objdump,
    go_objdump,
    readelf_loads,
    unstripped,
    vaddr_to_offset,
    variant_id,
)

from gotel.goelf import Function, open_binary

# Promoted-method wrappers that end in a tail JMP: no RET at all.
TAIL_CALLERS = [
    "net/http/internal.(*FlushAfterChunkWriter).Flush",
    "net/http.(*http2noDialClientConnPool).MarkDead",
]


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_return_offsets_match_objdump(httpserver, variant) -> None:
    toolchain, flavor = variant
    built = httpserver(toolchain, flavor)
    names = PROBED + TAIL_CALLERS
    listing = go_objdump(httpserver(toolchain, unstripped(flavor)).path, names)
    loads = readelf_loads(built.path)
    raw = built.path.read_bytes()
    with open_binary(built.path) as b:
        found = b.functions(names)
        assert set(PROBED) <= set(found)
        for name, fn in found.items():
            want = [vaddr_to_offset(loads, i.address) for i in listing[name] if i.text == "RET"]
            got = b.return_offsets(fn)
            assert got == want, name
            assert all(raw[off] == 0xC3 for off in got)
        assert len(b.return_offsets(found["net/http.(*Transport).roundTrip"])) > 5


@pytest.mark.parametrize("variant", [v for v in VARIANTS if "stripped" in v[1]],
                         ids=variant_id)
def test_return_offsets_match_binutils_on_the_stripped_file(httpserver, variant) -> None:
    """A second oracle that reads the stripped file itself rather than its twin."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) not installed")
    built = httpserver(*variant)
    loads = readelf_loads(built.path)
    with open_binary(built.path) as b:
        for name, fn in b.functions(PROBED).items():
            insns = gnu_objdump(built.path, fn.address, fn.address + fn.size)
            want = [vaddr_to_offset(loads, i.address) for i in insns
                    if i.text.split()[:1] == ["ret"]]
            assert b.return_offsets(fn) == want, name


def test_tail_call_wrapper_has_no_returns(httpserver) -> None:
    built = httpserver(LOCAL, "stripped")
    listing = go_objdump(httpserver(LOCAL, "default").path, TAIL_CALLERS)
    with open_binary(built.path) as b:
        empty = [n for n, fn in b.functions(TAIL_CALLERS).items() if not b.return_offsets(fn)]
        assert empty, "expected at least one tail-calling wrapper"
        for name in empty:
            assert not any(i.text == "RET" for i in listing[name])
            assert listing[name][-1].text.startswith("JMP")


def test_return_offsets_are_a_copy(httpserver) -> None:
    with open_binary(httpserver(LOCAL, "default").path) as b:
        fn = b.function("main.main")
        assert fn is not None
        first = b.return_offsets(fn)
        first.clear()
        assert b.return_offsets(fn)


def test_function_outside_the_file_gives_no_returns(httpserver) -> None:
    with open_binary(httpserver(LOCAL, "default").path) as b:
        assert b.return_offsets(Function("ghost", 0x10, 8, 0x10)) == []
