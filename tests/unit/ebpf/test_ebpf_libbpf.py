"""The ctypes layer: lazy loading, and struct layouts diffed against libbpf's own headers."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ebpf_testing import run

from gotel.ebpf import libbpf

# ctypes mirror -> the C struct it must match, field for field
_MIRRORS = {
    libbpf.BpfUprobeOpts: "bpf_uprobe_opts",
    libbpf.BpfProgLoadOpts: "bpf_prog_load_opts",
}


def _layout_program() -> str:
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <bpf/bpf.h>"]
    lines += ["#include <bpf/libbpf.h>", "int main(void)", "{"]
    for mirror, c_name in _MIRRORS.items():
        lines.append(f'    printf("{c_name} %zu\\n", sizeof(struct {c_name}));')
        for field, *_ in mirror._fields_:
            lines.append(
                f'    printf("{c_name}.{field} %zu\\n", offsetof(struct {c_name}, {field}));'
            )
    return "\n".join([*lines, "    return 0;", "}", ""])


def test_opts_layouts_match_the_installed_headers(build_dir: Path) -> None:
    clang = shutil.which("clang")
    assert clang, "clang not found"
    source = build_dir / "layouts.c"
    source.write_text(_layout_program())
    exe = build_dir / "layouts"
    run([clang, "-O0", str(source), "-o", str(exe)])
    expected = dict(line.split() for line in run([str(exe)]).stdout.splitlines())
    ours = {}
    for mirror, c_name in _MIRRORS.items():
        ours[c_name] = str(ctypes.sizeof(mirror))
        for field, *_ in mirror._fields_:
            ours[f"{c_name}.{field}"] = str(getattr(mirror, field).offset)
    assert ours == expected


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_import_does_not_load_libbpf() -> None:
    code = "import gotel.ebpf; print('libbpf.so' in open('/proc/self/maps').read())"
    assert _python(code).stdout.strip() == "False"


def test_missing_library_is_not_supported() -> None:
    code = (
        "from gotel.ebpf import libbpf, libbpf_version\n"
        "from gotel.errors import NotSupportedError\n"
        "libbpf.LIBBPF_SONAME = 'libbpf.so.999'\n"
        "try:\n"
        "    libbpf_version()\n"
        "except NotSupportedError as exc:\n"
        "    print(exc.exit_code, str(exc).split(':')[0])\n"
    )
    assert _python(code).stdout.strip() == "3 libbpf.so.999 not found (install libbpf1)"


@pytest.mark.parametrize("err", [1, 2, 13])
def test_strerror_covers_errno(err: int) -> None:
    assert libbpf.strerror(-err) == os.strerror(err)


def test_strerror_covers_libbpf_codes() -> None:
    assert libbpf.strerror(4001) == "BPF object format invalid"  # LIBBPF_ERRNO__FORMAT
