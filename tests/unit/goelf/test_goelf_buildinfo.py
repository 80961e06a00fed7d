"""Go version, modules and build settings, diffed against `go version -m`."""

from __future__ import annotations

import time

import pytest
from goelf_testing import LOCAL, OLD_TOOLCHAINS, go_exe, go_version_m, run

from gotel.goelf import GoBinary, Module, open_binary
from gotel.goelf.buildinfo import go_unquote

VARIANTS = [
    (LOCAL, "default"), (LOCAL, "stripped"), (LOCAL, "pie"), (LOCAL, "pie-stripped"),
    (LOCAL, "ext"), (LOCAL, "ext-stripped"), (LOCAL, "ext-pie-stripped"),
    *[(tc, fl) for tc in OLD_TOOLCHAINS for fl in ("default", "stripped")],
    (OLD_TOOLCHAINS[0], "ext-pie-stripped"),
]


def assert_matches_go_version_m(b: GoBinary) -> None:
    ref = go_version_m(b.path)
    assert b.go_version == ref.go_version
    assert b.main == (Module(*ref.main) if ref.main else None)
    assert b.modules == ref.deps
    assert {k: (v.path, v.version) for k, v in b.replaced.items()} == ref.replaced
    assert b.build_settings == ref.settings


@pytest.mark.parametrize(("toolchain", "flavor"), VARIANTS)
def test_buildinfo_matches_go_version_m(httpserver, toolchain: str, flavor: str) -> None:
    built = httpserver(toolchain, flavor)
    with open_binary(built.path) as b:
        assert_matches_go_version_m(b)
        if toolchain != LOCAL:
            assert b.go_version == toolchain
        assert b.pie == ("pie" in flavor)
        assert b.has_symtab == ("stripped" not in flavor)
        assert b.has_dwarf == ("stripped" not in flavor)
        assert b.build_settings["-buildmode"] == ("pie" if "pie" in flavor else "exe")


@pytest.mark.parametrize("toolchain", [LOCAL, *OLD_TOOLCHAINS])
def test_dependencies_replacements_and_quoted_settings(offset_probe, toolchain: str) -> None:
    built = offset_probe(toolchain)
    with open_binary(built.path) as b:
        assert_matches_go_version_m(b)
        # What the comparison covered, so it cannot pass on two empty views:
        assert b.modules == {"example.com/greet": "v1.2.3"}
        assert b.replaced == {"example.com/greet": Module("./greet", "(devel)")}
        assert b.build_settings["-ldflags"] == "-X main.note=hi"  # quoted in the binary
        assert b.build_settings["-tags"] == "goelftest"


def test_program_outside_a_module_has_no_main_module(no_module_binary) -> None:
    with open_binary(no_module_binary.path) as b:
        assert_matches_go_version_m(b)
        assert b.main is None
        assert b.modules == {}


def test_build_id_is_the_go_build_id(httpserver) -> None:
    built = httpserver(LOCAL, "stripped")
    ref = run([go_exe(), "tool", "buildid", str(built.path)]).strip()
    with open_binary(built.path) as b:
        assert b.build_id == ref


def test_open_is_cheap(httpserver) -> None:
    path = httpserver(LOCAL, "default").path
    start = time.perf_counter()
    with open_binary(path) as b:
        assert b.go_version
    assert time.perf_counter() - start < 0.25  # measured ~4 ms


@pytest.mark.parametrize(
    ("quoted", "plain"),
    [
        ('"-s -w"', "-s -w"),
        ('"a\\tb\\"c\\\\"', 'a\tb"c\\'),
        ('"\\x41\\u00e9\\U0001F600\\101"', "Aé😀A"),
        ("`raw \\n`", "raw \\n"),
        ("plain", "plain"),
        ('"unterminated', '"unterminated'),
    ],
)
def test_go_unquote(quoted: str, plain: str) -> None:
    assert go_unquote(quoted) == plain
