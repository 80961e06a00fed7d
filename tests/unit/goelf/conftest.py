"""Fixtures for gotel.goelf tests: real Go binaries built from source, several toolchains.

Builds are cached under tests/.build/goelf (keyed by sources, flags and toolchain), so only
the first run pays for linking. A toolchain that cannot be fetched, or a missing C linker for
external linking, skips the tests that need it with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from goelf_testing import (
    BUILD_ROOT,
    HTTPSERVER,
    LOCAL,
    NO_MODULE,
    OFFSET_PROBE,
    BuildUnavailable,
    Built,
    GoBuilder,
    go_build_cache,
    write_tree,
)

BuildFn = Callable[[str, str], Built]


@pytest.fixture(scope="session")
def builder() -> Iterator[GoBuilder]:
    try:
        go_build_cache()  # before any test moves XDG_CACHE_HOME
    except BuildUnavailable as e:
        pytest.skip(str(e))
    yield GoBuilder()


@pytest.fixture(scope="session")
def httpserver(builder: GoBuilder) -> BuildFn:
    """httpserver(toolchain, flavor) -> the built binary (skips if it cannot be built)."""

    def build(toolchain: str = LOCAL, flavor: str = "default") -> Built:
        try:
            return builder.build(HTTPSERVER, toolchain, flavor)
        except BuildUnavailable as e:
            pytest.skip(str(e))

    return build


@pytest.fixture(scope="session")
def offset_probe(builder: GoBuilder) -> Callable[[str], Built]:
    """A program printing unsafe.Offsetof of exported fields; it also has a replaced dep."""
    src = write_tree(BUILD_ROOT / "src" / "offsetprobe", OFFSET_PROBE)

    def build(toolchain: str = LOCAL) -> Built:
        try:
            return builder.build(src, toolchain, "default",
                                 extra=("-tags=goelftest", "-ldflags=-X main.note=hi"))
        except BuildUnavailable as e:
            pytest.skip(str(e))

    return build


@pytest.fixture(scope="session")
def no_module_binary(builder: GoBuilder) -> Built:
    """Built from a file list outside any module: build info has a path but no main module."""
    src = write_tree(BUILD_ROOT / "src" / "nomodule", NO_MODULE)
    return builder.build(src, LOCAL, "default", target="hello.go")


@pytest.fixture
def dwarf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private, empty DWARF cache for the test (never the user's ~/.cache)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield tmp_path / "cache" / "gotel" / "dwarf"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test gets a cache outside $HOME; tests about caching override it (dwarf_cache).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
