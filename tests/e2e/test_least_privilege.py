"""gotel with only the capabilities it documents (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE,
CAP_NET_ADMIN, CAP_DAC_READ_SEARCH), on a target of another user whose executable only
that user may read; and, with any one of them dropped, a message that names it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import conftest
from conftest import Gotel, get, read_jsonl
from gotools import build_app

pytestmark = pytest.mark.usefixtures("require_root")

FIVE = {"bpf": 39, "perfmon": 38, "sys_ptrace": 19, "net_admin": 12, "dac_read_search": 2}
NOBODY = 65534


@dataclass
class Target:
    pid: int
    url: str
    binary: Path


def _with_caps(monkeypatch: pytest.MonkeyPatch, caps: list[str]) -> None:
    """Every Gotel started in this test runs as root with only `caps` (bounding set)."""
    bounding = "-all" + "".join(f",+{cap}" for cap in caps)
    monkeypatch.setattr(conftest, "GOTEL", ["setpriv", f"--bounding-set={bounding}", "--",
                                            *conftest.GOTEL])


def _start(binary: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(binary),
         "-addr", "127.0.0.1:0", *flags],
        stdout=subprocess.PIPE, text=True,
    )


def _listening(popen: subprocess.Popen[str]) -> str:
    assert popen.stdout is not None
    line = popen.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return "http://" + line.removeprefix("listening on ")


@pytest.fixture
def private_binary() -> Iterator[Path]:
    """The demo server as nobody's file, mode 0700, in a directory others may only cross."""
    folder = Path(f"/tmp/gotel-lp-{os.getpid()}")
    folder.mkdir(mode=0o711)
    binary = folder / "app"
    shutil.copy(build_app("httpserver"), binary)
    os.chown(binary, NOBODY, NOBODY)
    binary.chmod(0o700)
    yield binary
    shutil.rmtree(folder)


@pytest.fixture
def foreign_target(private_binary: Path) -> Iterator[Target]:
    popen = _start(private_binary)
    try:
        yield Target(popen.pid, _listening(popen), private_binary)
    finally:
        popen.terminate()
        popen.wait(timeout=10)


def _effective(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1], 16) for line in status if line.startswith("CapEff:"))


def test_the_five_capabilities_are_enough(monkeypatch, tmp_path, private_binary, gotels):
    _with_caps(monkeypatch, list(FIVE))
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", str(private_binary), "--exporter", "jsonl",
                  "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("catching processes at exec")  # the exec tracepoint loads with them
    # setpriv execs gotel in place: its pid is gotel's, with exactly the five.
    assert _effective(gotel.popen.pid) == sum(1 << bit for bit in FIVE.values())
    downstream = _start(private_binary)
    front = None
    try:
        front = _start(private_binary, "-downstream", _listening(downstream))
        url = _listening(front)
        for popen in (downstream, front):
            line = gotel.wait_for(rf"pid {popen.pid} .*attached \d+/\d+ probes").string
            assert "traceparent out: on" in line, line
        assert get(url + "/chain") == 200
        spans = read_jsonl(out, 3)
        assert sorted(s["kind"] for s in spans) == ["CLIENT", "SERVER", "SERVER"], gotel.log
        assert len({s["trace_id"] for s in spans}) == 1, spans  # propagated: one trace
    finally:
        for popen in (front, downstream):
            if popen is not None:
                popen.terminate()
                popen.wait(timeout=10)
    assert gotel.stop() == 0
    assert "without CAP_" not in gotel.log


@pytest.mark.parametrize(
    ("dropped", "said", "code"),
    [
        ("bpf", "missing privileges: CAP_BPF (run gotel as root, or grant CAP_BPF, CAP_PERFMON,"
                " CAP_SYS_PTRACE, CAP_NET_ADMIN and CAP_DAC_READ_SEARCH)", 3),
        ("perfmon", "missing privileges: CAP_PERFMON", 3),
        ("sys_ptrace", "missing privileges (run gotel as root or grant CAP_SYS_PTRACE)", 3),
        ("dac_read_search", "exe: cannot read: missing CAP_DAC_READ_SEARCH", 3),
        ("net_admin", "outgoing traceparent off: program type sock_ops: missing CAP_NET_ADMIN",
         0),
    ],
)
def test_a_missing_capability_is_named(monkeypatch, foreign_target, gotels, dropped, said,
                                       code):
    _with_caps(monkeypatch, [cap for cap in FIVE if cap != dropped])
    gotel = Gotel("attach", "--pid", str(foreign_target.pid), "--exporter", "none")
    gotels.append(gotel)
    if code == 0:  # still instruments, without what that capability brings
        gotel.wait_for(rf"pid {foreign_target.pid} .*attached \d+/\d+ probes \(\d+ uprobes\), "
                       "traceparent out: off")
        assert gotel.stop() == 0
    else:
        assert gotel.popen.wait(timeout=60) == code, gotel.log
        gotel.stop()
    assert said in gotel.log, gotel.log
    assert "Traceback" not in gotel.log
    assert get(foreign_target.url + "/hello/unharmed") == 200
