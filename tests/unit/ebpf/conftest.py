"""Fixtures for gotel.ebpf tests: real BPF objects compiled here, a real Go target.

Everything runs against the kernel (root required); a machine that cannot compile or load
BPF fails these tests with the reason instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ebpf_testing import PROBED_SYMBOL, GoTarget, LoopProcess, bpf_fds, file_offset, run

HERE = Path(__file__).resolve().parent
BPF_CFLAGS = ("-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-I/usr/include/x86_64-linux-gnu")


@pytest.fixture(scope="session", autouse=True)
def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("gotel.ebpf tests load real BPF programs: run them as root", False)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ebpf")


@pytest.fixture(scope="session")
def bpf_objects(build_dir: Path) -> dict[str, Path]:
    """testprobe.bpf.o and badprobe.bpf.o (the verifier rejects the latter)."""
    clang = shutil.which("clang")
    if clang is None:
        pytest.fail("clang not found: install clang to compile the test BPF programs", False)
    out = {}
    for name in ("testprobe", "badprobe"):
        obj = build_dir / f"{name}.bpf.o"
        run([clang, *BPF_CFLAGS, "-c", str(HERE / f"{name}.bpf.c"), "-o", str(obj)])
        out[name] = obj
    return out


@pytest.fixture(scope="session")
def go_target(build_dir: Path) -> GoTarget:
    """tests/unit/ebpf/loop built, with main.probed's address and file offset."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(go, os.X_OK):
        pytest.fail("go toolchain not found: install Go to build the test target", False)
    binary = build_dir / "loop"
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=mod")
    run([go, "build", "-o", str(binary), "."], cwd=HERE / "loop", env=env)
    for line in run([go, "tool", "nm", str(binary)]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "T" and parts[2] == PROBED_SYMBOL:
            vaddr = int(parts[0], 16)
            return GoTarget(binary, vaddr, file_offset(binary, vaddr))
    raise AssertionError(f"{PROBED_SYMBOL} not in `go tool nm {binary}`")


@pytest.fixture
def loop(go_target: GoTarget) -> Iterator[LoopProcess]:
    proc = LoopProcess(go_target)
    yield proc
    proc.close()


@pytest.fixture
def other_loop(go_target: GoTarget) -> Iterator[LoopProcess]:
    """A second process of the same binary, which a pid-filtered probe must ignore."""
    proc = LoopProcess(go_target)
    yield proc
    proc.close()


@pytest.fixture(autouse=True)
def _no_bpf_left_behind() -> Iterator[None]:
    before = bpf_fds()
    yield
    leaked = sorted(set(bpf_fds()) - set(before))
    assert not leaked, f"BPF file descriptors left open: {leaked}"
