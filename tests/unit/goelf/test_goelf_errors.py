"""Unusable input becomes one GotelError subclass with a one-line message, nothing else."""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path

import pytest
from goelf_testing import LOCAL, PROBED

from gotel.errors import (
    GotelError,
    GoVersionUnsupportedError,
    NotAnElfError,
    NotGoBinaryError,
    TargetError,
)
from gotel.goelf import open_binary
from gotel.goelf.elffile import ElfImage


def expect(cls: type[GotelError], path: Path, *fragments: str) -> GotelError:
    with pytest.raises(GotelError) as info:
        open_binary(path)
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(str(path) + ": ")  # context first
    rest = msg[len(str(path)) + 2 :]
    assert rest[:1].islower(), msg
    for fragment in fragments:
        assert fragment in msg
    return err


def copy_of(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_text_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello\nworld\n")
    expect(NotAnElfError, p, "not an ELF file")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty"
    p.touch()
    expect(NotAnElfError, p, "empty")


def test_missing_path(tmp_path: Path) -> None:
    expect(TargetError, tmp_path / "nope", "no such file")


def test_directory(tmp_path: Path) -> None:
    expect(NotAnElfError, tmp_path, "not a regular file")


def test_elf_that_is_not_go() -> None:
    ls = Path("/bin/ls")
    if not ls.is_file() or ls.read_bytes()[:4] != b"\x7fELF":
        pytest.skip("/bin/ls is not an ELF file here")
    expect(NotGoBinaryError, ls, "not a Go binary")


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999, 16, 63, 4096])
def test_truncated_go_binary(httpserver, tmp_path: Path, keep: float) -> None:
    src = httpserver(LOCAL, "default").path
    data = src.read_bytes()
    size = int(len(data) * keep) if isinstance(keep, float) else keep
    p = tmp_path / "truncated"
    p.write_bytes(data[: max(size, 1)])
    expect(NotAnElfError, p)


@pytest.mark.parametrize(("machine", "elf_class", "arch"), [(183, 2, "arm64"), (3, 1, "386")])
def test_wrong_architecture(httpserver, tmp_path: Path, machine: int, elf_class: int,
                            arch: str) -> None:
    p = copy_of(httpserver(LOCAL, "stripped").path, tmp_path / "foreign")
    patch(p, 4, bytes([elf_class]))
    patch(p, 18, struct.pack("<H", machine))
    expect(GoVersionUnsupportedError, p,
           f"gotel supports linux/amd64 Go binaries; this one is {arch}")


def _pointer_format(src: Path, dst: Path, version: str) -> Path:
    """Rewrite the build info the way Go <= 1.17 stored it: pointers to string headers."""
    p = copy_of(src, dst)
    img = ElfImage(p)
    sec = img.section(".go.buildinfo")
    img.close()
    assert sec is not None and sec.size >= 256
    base = sec.addr
    modinfo = b"S" * 16 + b"path\tgotel.test/old\nmod\tgotel.test/old\t(devel)\t\n" + b"E" * 16
    blob = bytearray(sec.size)
    blob[:16] = b"\xff Go buildinf:" + bytes([8, 0])  # pointer size 8, flags 0
    struct.pack_into("<QQ", blob, 16, base + 64, base + 80)
    struct.pack_into("<QQ", blob, 64, base + 128, len(version))
    struct.pack_into("<QQ", blob, 80, base + 128 + len(version), len(modinfo))
    blob[128 : 128 + len(version) + len(modinfo)] = version.encode() + modinfo
    patch(p, sec.offset, bytes(blob))
    return p


def test_go_older_than_1_17_is_rejected(httpserver, tmp_path: Path) -> None:
    p = _pointer_format(httpserver(LOCAL, "stripped").path, tmp_path / "old", "go1.16.15")
    expect(GoVersionUnsupportedError, p, "go1.16.15", "Go 1.17 or newer")


def test_go_1_17_pointer_format_is_decoded(httpserver, tmp_path: Path) -> None:
    p = _pointer_format(httpserver(LOCAL, "stripped").path, tmp_path / "go117", "go1.17.13")
    with open_binary(p) as b:
        assert b.go_version == "go1.17.13"
        assert b.main is not None and b.main.path == "gotel.test/old"
        assert b.main.version == "(devel)"
        assert b.modules == {}


def test_damaged_build_info(httpserver, tmp_path: Path) -> None:
    p = copy_of(httpserver(LOCAL, "stripped").path, tmp_path / "damaged")
    img = ElfImage(p)
    sec = img.section(".go.buildinfo")
    img.close()
    assert sec is not None
    patch(p, sec.offset + 32, b"\xff" * 10)  # a version length longer than the file
    expect(NotGoBinaryError, p, "build info is damaged")


def test_random_corruption_never_leaks_other_exceptions(httpserver, tmp_path: Path) -> None:
    """Scribble over headers and tables; every outcome is a result or a GotelError."""
    src = httpserver(LOCAL, "default").path
    data = src.read_bytes()
    img = ElfImage(src)
    targets = [(0, 64), (img.section(".gopclntab").offset, 128),
               (img.section(".go.buildinfo").offset, 64),
               (img.section(".go.module").offset, 256) if img.section(".go.module") else (0, 64)]
    shoff = struct.unpack_from("<Q", data, 40)[0]
    targets.append((shoff, 64 * 40))
    img.close()
    rng = random.Random(1234)
    p = tmp_path / "fuzzed"
    outcomes = {"ok": 0, "error": 0}
    for i in range(60):
        buf = bytearray(data)
        start, span = targets[i % len(targets)]
        for _ in range(rng.randint(1, 8)):
            buf[start + rng.randrange(span)] = rng.randrange(256)
        p.write_bytes(buf)
        try:
            with open_binary(p) as b:
                for fn in b.functions(PROBED).values():
                    b.return_offsets(fn)
                b.field_offsets([("runtime.g", "goid")])
                _ = b.build_id
            outcomes["ok"] += 1
        except GotelError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
    assert outcomes["ok"] + outcomes["error"] == 60
