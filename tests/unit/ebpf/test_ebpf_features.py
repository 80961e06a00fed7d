"""Kernel feature probes, diffed against the uapi header and against real loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ebpf_testing import run

from gotel.ebpf import BpfObject, UnknownNameError, features
from gotel.errors import BpfLoadError

_WRITE_USER = """
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("uprobe")
int write_user(struct pt_regs *ctx)
{
    __u64 zero = 0;
    return bpf_probe_write_user((void *)ctx->rsp, &zero, sizeof(zero));
}
"""


def test_enum_tables_match_linux_bpf_h(build_dir: Path) -> None:
    clang = shutil.which("clang")
    assert clang, "clang not found"
    tables = {
        "BPF_PROG_TYPE_": features.PROG_TYPES,
        "BPF_MAP_TYPE_": features.MAP_TYPES,
        "BPF_FUNC_": features.HELPERS,
    }
    lines = ["#include <stdio.h>", "#include <linux/bpf.h>", "int main(void) {"]
    ours = {}
    for prefix, table in tables.items():
        for name, value in table.items():
            c_name = prefix + (name if prefix == "BPF_FUNC_" else name.upper())
            lines.append(f'printf("{c_name} %d\\n", (int){c_name});')
            ours[c_name] = str(value)
    source = build_dir / "enums.c"
    source.write_text("\n".join([*lines, "return 0; }", ""]))
    run([clang, str(source), "-o", str(build_dir / "enums")])
    header = dict(line.split() for line in run([str(build_dir / "enums")]).stdout.splitlines())
    assert header == ours


def test_what_gotel_needs_is_supported_here() -> None:
    assert features.map_type_supported("ringbuf")
    assert features.map_type_supported("BPF_MAP_TYPE_PERCPU_ARRAY")
    assert features.prog_type_supported("kprobe")
    assert features.prog_type_supported("sk_msg") and features.prog_type_supported("sock_ops")
    assert features.helper_supported("kprobe", "bpf_probe_read_user")
    assert features.helper_supported("sk_msg", "msg_push_data")


def test_helper_of_another_program_type_is_unsupported() -> None:
    assert not features.helper_supported("kprobe", "msg_push_data")


def test_probe_write_user_answer_matches_a_real_load(build_dir: Path) -> None:
    """Under lockdown the kernel says "cannot use helper", which libbpf 1.1's own probe
    misreads as supported; ours must agree with what loading a real program does."""
    source = build_dir / "write_user.bpf.c"
    source.write_text(_WRITE_USER)
    obj_path = build_dir / "write_user.bpf.o"
    clang = shutil.which("clang")
    assert clang, "clang not found"
    run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c",
         str(source), "-o", str(obj_path)])  # fmt: skip
    with BpfObject(obj_path) as obj:
        try:
            obj.load()
            loads = True
        except BpfLoadError as exc:
            assert "bpf_probe_write_user" in str(exc)
            loads = False
    assert features.helper_supported("kprobe", "probe_write_user") == loads


def test_unknown_names() -> None:
    with pytest.raises(UnknownNameError, match=r"bpf map type 'ring': unknown \(known: hash"):
        features.map_type_supported("ring")
    with pytest.raises(UnknownNameError, match="bpf helper 'nope'"):
        features.helper_supported("kprobe", "nope")
