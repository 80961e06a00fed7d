"""Struct field offsets from DWARF, checked against unsafe.Offsetof and readelf."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from goelf_testing import GO121, GO122, LOCAL, readelf_struct_fields, run

from gotel.goelf import dwarf, open_binary
from gotel.goelf.elffile import ElfImage

WANTED = [
    ("net/http.Request", "Method"),
    ("net/http.Request", "URL"),
    ("net/url.URL", "Path"),
    ("runtime.g", "goid"),
    ("net/http.response", "status"),
    ("net/http.Request", "Pattern"),  # Go 1.23+
    ("net/http.Request", "pat"),  # Go 1.22+
]
TOOLCHAINS = [LOCAL, GO121, GO122]


def split(key: str) -> tuple[str, str]:
    struct_name, _, field = key.rpartition(".")
    return struct_name, field


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_exported_fields_match_unsafe_offsetof(offset_probe, httpserver, toolchain: str,
                                                dwarf_cache: Path) -> None:
    probe = offset_probe(toolchain)
    printed = json.loads(run([str(probe.path)]))
    expected = {split(k): v for k, v in printed.items()}
    assert (("net/http.Request", "Pattern") in expected) == (toolchain == LOCAL)
    # The probe itself and the test server, built by the same toolchain, share net/http.
    for path in (probe.path, httpserver(toolchain, "default").path):
        with open_binary(path) as b:
            assert b.field_offsets(list(expected)) == expected, path.name


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_fields_match_readelf(httpserver, toolchain: str, dwarf_cache: Path) -> None:
    built = httpserver(toolchain, "default")
    ref = readelf_struct_fields(built.path, {s for s, _ in WANTED})
    every_field = [(s, f) for s, fields in ref.items() for f in fields]
    assert len(every_field) > 100
    with open_binary(built.path) as b:
        got = b.field_offsets(every_field)
        assert got == {(s, f): ref[s][f] for s, f in every_field}
        got = b.field_offsets(WANTED)
    assert ("runtime.g", "goid") in got and ("net/http.response", "status") in got
    assert (("net/http.Request", "Pattern") in got) == (toolchain == LOCAL)
    assert (("net/http.Request", "pat") in got) == (toolchain != GO121)


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_pie_and_external_linking_have_the_same_layout(httpserver, toolchain: str,
                                                       dwarf_cache: Path) -> None:
    with open_binary(httpserver(toolchain, "default").path) as b:
        expected = b.field_offsets(WANTED)
    flavor = "pie" if toolchain != LOCAL else "ext"
    with open_binary(httpserver(toolchain, flavor).path) as b:
        assert b.field_offsets(WANTED) == expected


def test_absent_structs_and_fields_are_left_out(httpserver, dwarf_cache: Path) -> None:
    with open_binary(httpserver(LOCAL, "default").path) as b:
        got = b.field_offsets([("net/http.Request", "Method"), ("net/http.Request", "Nope"),
                               ("no/such.Type", "x"), ("runtime", "g"), ("", "")])
        assert list(got) == [("net/http.Request", "Method")]
        assert b.field_offsets([]) == {}


def test_stripped_binary_has_no_fields(httpserver, dwarf_cache: Path) -> None:
    with open_binary(httpserver(LOCAL, "stripped").path) as b:
        assert not b.has_dwarf
        assert b.field_offsets(WANTED) == {}
    assert not dwarf_cache.exists()


@pytest.mark.parametrize("mode", ["zlib-gnu", "decompress"])
def test_zdebug_and_uncompressed_sections(httpserver, tmp_path: Path, mode: str,
                                          dwarf_cache: Path) -> None:
    if shutil.which("objcopy") is None:
        pytest.skip("objcopy (binutils) not installed")
    src = httpserver(LOCAL, "default").path
    with open_binary(src) as b:
        expected = b.field_offsets(WANTED)
    shutil.rmtree(dwarf_cache)  # the copy keeps the build id: make it parse, not hit the cache
    out = tmp_path / f"server-{mode}"
    flag = {"decompress": "--decompress-debug-sections",
            "zlib-gnu": "--compress-debug-sections=zlib-gnu"}[mode]
    subprocess.run(["objcopy", flag, str(src), str(out)], check=True)
    sections = run(["readelf", "-SW", str(out)])
    assert (".zdebug_info" in sections) == (mode == "zlib-gnu")
    with open_binary(out) as b:
        assert b.field_offsets(WANTED) == expected


def test_results_are_cached_on_disk_by_build_id(httpserver, dwarf_cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = httpserver(LOCAL, "default").path
    with open_binary(path) as b:
        expected = b.field_offsets(WANTED)
        files = list(dwarf_cache.iterdir())
        assert len(files) == 1 and files[0].suffix == ".json"
        assert b.build_id.split("/")[0] in files[0].name

    def no_dwarf_parsing(*args: object) -> None:
        raise AssertionError("DWARF parsed although cached")

    monkeypatch.setattr(dwarf, "DwarfIndex", no_dwarf_parsing)
    with open_binary(path) as b:
        assert b.field_offsets(WANTED) == expected
        # A struct not asked for before is parsed (and added to the cache file).
        monkeypatch.undo()
        monkeypatch.setenv("XDG_CACHE_HOME", str(dwarf_cache.parent.parent))
        assert b.field_offsets([("net/http.Server", "Addr")])
    doc = json.loads(files[0].read_text())
    assert "net/http.Server" in doc["structs"] and "runtime.g" in doc["structs"]


def test_corrupt_or_unwritable_cache_is_ignored(httpserver, dwarf_cache: Path,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = httpserver(LOCAL, "default").path
    with open_binary(path) as b:
        expected = b.field_offsets(WANTED)
    (cache_file,) = dwarf_cache.iterdir()
    for junk in ("{not json", "[]", '{"schema": 1, "structs": {"runtime.g": {"goid": "x"}}}'):
        cache_file.write_text(junk)
        with open_binary(path) as b:
            assert b.field_offsets(WANTED) == expected
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with open_binary(path) as b:
        assert b.field_offsets(WANTED) == expected


def test_cold_lookup_is_fast(httpserver, dwarf_cache: Path) -> None:
    path = httpserver(LOCAL, "default").path
    start = time.perf_counter()
    with open_binary(path) as b:
        assert len(b.field_offsets(WANTED)) == len(WANTED)
    assert time.perf_counter() - start < 1.0  # measured ~15 ms


def test_corrupt_dwarf_never_raises(httpserver, tmp_path: Path, dwarf_cache: Path) -> None:
    """Scribbled .debug_info/.debug_abbrev: answers may be missing, exceptions never leak."""
    if shutil.which("objcopy") is None:
        pytest.skip("objcopy (binutils) not installed")
    plain = tmp_path / "plain"
    subprocess.run(["objcopy", "--decompress-debug-sections",
                    str(httpserver(LOCAL, "default").path), str(plain)], check=True)
    img = ElfImage(plain)
    info, abbrev = img.section(".debug_info"), img.section(".debug_abbrev")
    img.close()
    assert info is not None and abbrev is not None
    data = plain.read_bytes()
    # Aim at the bytes that matter: the struct DIEs the lookup decodes.
    hot = [data.find(b"runtime.g\0", info.offset), data.find(b"net/url.URL\0", info.offset)]
    rng = random.Random(7)
    out = tmp_path / "fuzzed"
    for i in range(40):
        buf = bytearray(data)
        if i % 3 == 0:
            start, span = abbrev.offset, abbrev.size
        else:
            start, span = hot[i % 2] - 8, 600
        for _ in range(rng.randint(1, 6)):
            buf[start + rng.randrange(span)] = rng.randrange(256)
        out.write_bytes(buf)
        shutil.rmtree(dwarf_cache, ignore_errors=True)
        with open_binary(out) as b:
            got = b.field_offsets(WANTED)
            assert all(isinstance(v, int) for v in got.values())


@pytest.mark.parametrize(("toolchain", "flavor"), [(LOCAL, "default"), (LOCAL, "ext"),
                                                   (GO121, "default")])
def test_name_search_agrees_with_walking_every_die(httpserver, toolchain: str,
                                                   flavor: str) -> None:
    img = ElfImage(httpserver(toolchain, flavor).path)
    try:
        index = dwarf.DwarfIndex(img)
        names = {s for s, _ in WANTED} | {"sync.Mutex", "net/http.Server", "runtime.m"}
        walked = index._find_by_walk(set(names), index.units)
        assert set(walked) == names
        assert index.structs(names) == walked
    finally:
        img.close()
