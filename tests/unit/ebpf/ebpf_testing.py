"""Helpers for gotel.ebpf tests (a module of its own: several conftest.py files exist, so
tests cannot import from "conftest")."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PROBED_SYMBOL = "main.probed"
# File descriptors that point at kernel BPF/perf objects (program, map, link, BTF, perf).
_BPF_FD = re.compile(r"anon_inode:(bpf[-_].*|btf|\[perf_event\])")


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a build tool; a failure fails the test with the tool's stderr."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}", False)
    return result


def bpf_fds() -> list[str]:
    """Links of this process's fds that point at BPF objects."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the fd listdir itself used
            continue
        if _BPF_FD.fullmatch(target):
            found.append(f"{fd} -> {target}")
    return found


def file_offset(binary: Path, vaddr: int) -> int:
    """vaddr -> file offset through the PT_LOAD segment holding it (readelf -lW)."""
    text = run(["readelf", "-lW", str(binary)]).stdout
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] != ["LOAD"]:
            continue
        p_offset, p_vaddr, p_filesz = int(parts[1], 16), int(parts[2], 16), int(parts[4], 16)
        if p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise AssertionError(f"{binary}: no PT_LOAD segment holds 0x{vaddr:x}")


@dataclass(frozen=True)
class GoTarget:
    path: Path
    vaddr: int  # address of main.probed
    offset: int  # its file offset: what a uprobe takes


class LoopProcess:
    """A running tests/unit/ebpf/loop: call(n, base) makes it call probed(base+i, i) n times."""

    def __init__(self, target: GoTarget) -> None:
        self.target = target
        self.proc = subprocess.Popen(
            [str(target.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.pid = self.proc.pid
        self._expect("ready")

    def _expect(self, line: str) -> None:
        assert self.proc.stdout is not None
        got = self.proc.stdout.readline().strip()
        assert got == line, f"loop process said {got!r}, expected {line!r}"

    def call(self, n: int, base: int = 0) -> None:
        """Returns once all n calls are done (their probes fired synchronously)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n} {base}\n")
        self._expect(f"done {n}")

    def code_byte(self) -> int:
        """The byte at main.probed in this process's memory (0xCC while a uprobe is set)."""
        with open(f"/proc/{self.pid}/mem", "rb") as mem:
            mem.seek(self.target.vaddr)
            return mem.read(1)[0]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
