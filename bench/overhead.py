#!/usr/bin/env python3
"""What gotel costs a Go HTTP server, and how much of that the uprobes explain.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/overhead.py            # ~2.5 min
    .venv/bin/python bench/overhead.py --quick    # ~40 s

One invocation measures, on this machine:

1. requests/s of bench/apps/hello under wrk (1 and 8 connections), alternating
   without and with `gotel attach`, over several rounds (medians reported);
   gotel's own CPU per 1000 spans; events lost; the span count checked in one
   extra jsonl run;
2. the cost of one uprobe hit (entry and RET instructions) on a tight Go loop,
   attached with gotel's own libbpf runtime and a trivial counting program;
3. the ratio of the added time per request to (uprobe hits per request x hit
   cost), the hits per request coming from gotel's probe plan for the server.

This is a script that prints numbers, not a test: it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))  # gotools: the shared Go build helper

from gotel.ebpf import BpfObject, Link  # noqa: E402
from gotel.goelf import open_binary  # noqa: E402
from gotel.instrumentation.registry import all_probes  # noqa: E402
from gotel.planning import ProbePlan, plan_probes  # noqa: E402
from gotools import build_app  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
ATTACH_TIMEOUT_S = 60.0  # gotel analyses the binary and loads BPF before it says "attached"
STOP_TIMEOUT_S = 30.0
# gotel drains its ring buffers every 50 ms; this leaves it several timer ticks to
# consume the last events before its CPU time is read.
DRAIN_WAIT_S = 0.4
SETTLE_S = 0.3  # after attach: let gotel's start-up work finish before CPU is sampled

ATTACHED_RE = re.compile(r"attached (\d+)/(\d+) probes \((\d+) uprobes\)")
LOST_RE = re.compile(r"lost (\d+) events")


# --------------------------------------------------------------------------- processes


class Children:
    """Every process the benchmark starts, so that one finally-block can end them all."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc

    def end(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int | None:
        """Signal one child and reap it (SIGKILL if it does not go in time)."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def end_all(self) -> None:
        # gotel before its target: it must detach before the server goes away.
        for proc in list(reversed(self._procs)):
            try:
                self.end(proc)
            except OSError:
                pass


class Lines:
    """Reads a child's pipe on a thread: keeps every line and lets callers wait for one."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)  # end of stream

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        """The first new line matching `pattern`; None on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            if m := pattern.search(line):
                return m
        return None

    def next_line(self, timeout: float) -> str | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and ')'
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs: tells whether a run was CPU-bound."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    requests: int
    errors: str  # wrk's socket-error / non-2xx lines, empty when clean
    cpu: float  # wrk's own CPU seconds: the load generator shares the 2 CPUs


def children_cpu() -> float:
    """CPU of every reaped child: around one subprocess.run, that child's CPU (servers and
    gotel are reaped only outside those windows)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wrk(url: str, threads: int, conns: int, duration: float) -> WrkResult:
    seconds = max(1, round(duration))
    cpu0 = children_cpu()
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    total = re.search(r"(\d+) requests in", out.stdout)
    if out.returncode != 0 or not rps or not total:
        raise RuntimeError(f"wrk failed (rc {out.returncode}): {out.stdout}{out.stderr}")
    errors = " ".join(
        line.strip()
        for line in out.stdout.splitlines()
        if "Socket errors" in line or "Non-2xx" in line
    )
    return WrkResult(float(rps.group(1)), int(total.group(1)), errors, children_cpu() - cpu0)


# --------------------------------------------------------------------------- gotel


def gotel_command() -> list[str]:
    beside = Path(sys.executable).with_name("gotel")  # the venv's console script
    if beside.exists():
        return [str(beside)]
    found = shutil.which("gotel")
    if not found:
        raise SystemExit("overhead: gotel not found (run with the project's .venv/bin/python)")
    return [found]


@dataclass
class GotelRun:
    proc: subprocess.Popen[bytes]
    log: Lines
    uprobes: int


def start_gotel(children: Children, pid: int, exporter: str, output: str | None) -> GotelRun:
    argv = [*gotel_command(), "attach", "--pid", str(pid), "--exporter", exporter]
    if output:
        argv += ["--output", output]
    proc = children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    assert proc.stderr is not None
    log = Lines(proc.stderr)
    m = log.wait_for(ATTACHED_RE, ATTACH_TIMEOUT_S)
    if m is None:
        children.end(proc)
        log.join(5)
        raise RuntimeError("gotel did not attach:\n  " + "\n  ".join(log.lines[-20:]))
    return GotelRun(proc, log, int(m.group(3)))


def stop_gotel(children: Children, run: GotelRun) -> int:
    """SIGTERM (gotel detaches and flushes), then the events it reported lost."""
    rc = children.end(run.proc)
    run.log.join(10)
    if rc != 0:
        raise RuntimeError(f"gotel exited {rc}:\n  " + "\n  ".join(run.log.lines[-20:]))
    # Each warning gives the new losses since the previous check.
    return sum(int(m.group(1)) for line in run.log.lines if (m := LOST_RE.search(line)))


# --------------------------------------------------------------------------- server runs


@dataclass(frozen=True)
class Case:
    name: str
    threads: int
    conns: int


CASES = (Case("c1", 1, 1), Case("c8", 2, 8))


@dataclass
class Sample:
    """One wrk run. CPU figures are seconds during the wrk run unless said otherwise."""

    rps: float
    requests: int
    server_cpu: float
    wrk_cpu: float
    machine_cpu: float  # busy time summed over all CPUs (every process, softirq, ...)
    busy: float  # machine utilisation, 0..1
    gotel_cpu_run: float = 0.0  # gotel during the wrk run
    gotel_cpu: float = 0.0  # gotel from wrk start until its ring buffers are drained
    lost: int = 0
    errors: str = ""

    def per_req(self, seconds: float) -> float:
        return 1e6 * seconds / max(1, self.requests)

    @property
    def other_cpu(self) -> float:
        """Busy CPU outside server, wrk and gotel: loopback TCP softirq work, kernel
        threads, and whatever else runs on the machine (noise)."""
        return self.machine_cpu - self.server_cpu - self.wrk_cpu - self.gotel_cpu_run


@dataclass
class CaseResult:
    off: list[Sample] = field(default_factory=list)
    on: list[Sample] = field(default_factory=list)


class Server:
    """bench/apps/hello on a loopback port."""

    def __init__(self, children: Children, binary: Path) -> None:
        self.proc = children.start([str(binary), "-addr", "127.0.0.1:0"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.out = Lines(self.proc.stdout)
        m = self.out.wait_for(re.compile(r"listening on (\S+)"), 30)
        if m is None:
            raise RuntimeError("hello server did not start")
        self.url = f"http://{m.group(1)}/"
        self.pid = self.proc.pid


def measure(
    children: Children,
    server: Server,
    case: Case,
    duration: float,
    gotel: tuple[str, str | None] | None,
) -> Sample:
    """One wrk run; with `gotel` = (exporter, output) it runs attached."""
    run = start_gotel(children, server.pid, *gotel) if gotel else None
    try:
        if run:
            time.sleep(SETTLE_S)
            g0 = cpu_seconds(run.proc.pid)
        s0, m0 = cpu_seconds(server.pid), machine_ticks()
        res = run_wrk(server.url, case.threads, case.conns, duration)
        s1, m1 = cpu_seconds(server.pid), machine_ticks()
        busy, total = m1[0] - m0[0], m1[1] - m0[1]
        sample = Sample(res.rps, res.requests, s1 - s0, res.cpu, busy / CLK_TCK,
                        busy / max(1, total), errors=res.errors)
        if run:
            sample.gotel_cpu_run = cpu_seconds(run.proc.pid) - g0
            time.sleep(DRAIN_WAIT_S)
            sample.gotel_cpu = cpu_seconds(run.proc.pid) - g0
    finally:
        lost = stop_gotel(children, run) if run else 0
    sample.lost = lost
    return sample


# --------------------------------------------------------------------------- uprobe cost


@dataclass
class HitCost:
    """ns per call of main.target, one list per setup (one value per repetition):
    bare, entry (uprobe on its first instruction), ret (on its RET), both (what one
    request pays on the server probe)."""

    timings: dict[str, list[float]]
    entry_insn: str
    ret_insn: str
    hits_counted: int  # what the BPF program counted over every probed timing
    hits_expected: int  # probed calls x probes per call

    def ns(self, setup: str) -> float:
        return statistics.median(self.timings[setup])

    def added_us(self, setup: str) -> float:
        """µs a call gains from the probe(s) of `setup`: per hit for entry and ret."""
        return (self.ns(setup) - self.ns("bare")) / 1000


def instruction_at(path: Path, file_offset: int) -> str:
    """The instruction a probe sits on: it decides emulation vs single-step in the kernel."""
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    with open(path, "rb") as f:
        f.seek(file_offset)
        code = f.read(16)
    for insn in Cs(CS_ARCH_X86, CS_MODE_64).disasm(code, 0, 1):
        return f"{insn.mnemonic} {insn.op_str}".strip()
    return "?"


def compile_counter(workdir: Path) -> Path:
    out = workdir / "uprobecost.bpf.o"
    subprocess.run(
        ["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-Wall",
         "-c", str(BENCH / "uprobecost.bpf.c"), "-o", str(out)],
        check=True, capture_output=True, timeout=120,
    )
    return out


class LoopProcess:
    """bench/apps/uprobecost: times N calls of main.target per request on stdin."""

    def __init__(self, children: Children, binary: Path) -> None:
        self.children = children
        self.proc = children.start([str(binary)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.out = Lines(self.proc.stdout)
        if self.out.next_line(30) != "ready":
            raise RuntimeError("uprobecost did not start")

    def ns_per_call(self, n: int, timeout: float) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n".encode())
        self.proc.stdin.flush()
        line = self.out.next_line(timeout)
        m = re.match(r"ns/call ([\d.]+) calls", line or "")
        if not m:
            raise RuntimeError(f"uprobecost: unexpected reply {line!r}")
        return float(m.group(1))


def measure_hit_cost(
    children: Children, binary: Path, counter_obj: Path, bare_calls: int, probed_calls: int,
    reps: int,
) -> HitCost:
    with open_binary(binary) as gobin:
        fn = gobin.function("main.target")
        if fn is None:
            raise RuntimeError("main.target not found in uprobecost")
        rets = gobin.return_offsets(fn)
    if len(rets) != 1:
        raise RuntimeError(f"main.target: expected one RET, found {len(rets)}")
    entry, ret = fn.file_offset, rets[0]
    loop = LoopProcess(children, binary)
    # A probed call costs ~1000x a bare one: the timeout covers a very slow machine.
    probed_timeout = 60 + probed_calls * 100e-6
    obj = BpfObject(counter_obj)
    try:
        obj.load()
        loop.ns_per_call(bare_calls, 60)  # warm-up: page faults, CPU frequency
        setups: dict[str, tuple[int, ...]] = {
            "entry": (entry,), "ret": (ret,), "both": (entry, ret)
        }
        timings: dict[str, list[float]] = {"bare": [], **{k: [] for k in setups}}
        counted = expected = 0
        # Interleaved repetitions: a drift in CPU frequency or load hits every setup alike.
        for _ in range(reps):
            timings["bare"].append(loop.ns_per_call(bare_calls, 60))
            for name, offsets in setups.items():
                links: list[Link] = [obj.attach_uprobe("count_hit", binary, off, loop.proc.pid)
                                     for off in offsets]
                before = obj.percpu_sum("hits")
                try:
                    timings[name].append(loop.ns_per_call(probed_calls, probed_timeout))
                finally:
                    for link in links:
                        link.destroy()
                counted += obj.percpu_sum("hits") - before
                expected += probed_calls * len(offsets)
    finally:
        obj.close()
        children.end(loop.proc)
    return HitCost(timings, instruction_at(binary, entry), instruction_at(binary, ret),
                   counted, expected)


# --------------------------------------------------------------------------- plan


@dataclass
class PlanHits:
    entries: int  # uprobe hits per request at function entries
    rets: int  # and at RETs (exactly one RET of each returning hook runs per call)
    uprobes: int  # uprobes attached (every RET of every hook)
    probes: list[str]
    offsets: list[int]  # every attached file offset, for the hit-count check
    entry_insns: list[str]


def server_plan(binary: Path) -> PlanHits:
    with open_binary(binary) as gobin:
        plans: list[ProbePlan] = [p for p in plan_probes(gobin, all_probes()) if p.applies]
    if not plans:
        raise RuntimeError("no gotel probe applies to the hello server")
    for p in plans:
        if not p.probe.bpf_object.exists():
            raise SystemExit(f"overhead: {p.probe.bpf_object} missing: run `make bpf` first")
    entries = rets = 0
    offsets: list[int] = []
    insns: list[str] = []
    for p in plans:
        for h in p.hooks:
            if h.hook.entry:
                entries += 1
                offsets.append(h.function.file_offset)
                insns.append(instruction_at(binary, h.function.file_offset))
            if h.hook.returns:
                rets += 1
                offsets.extend(h.return_offsets)
    return PlanHits(entries, rets, sum(p.uprobe_count for p in plans),
                    [p.probe.name for p in plans], offsets, insns)


def measured_hits_per_request(
    children: Children, server: Server, binary: Path, counter_obj: Path, offsets: list[int],
    duration: float,
) -> tuple[float, int]:
    """Counts real hits at the plan's offsets under load: checks the plan's per-request
    figure (a probe that applies but is not on the request path would show here)."""
    obj = BpfObject(counter_obj)
    try:
        obj.load()
        for off in offsets:
            obj.attach_uprobe("count_hit", binary, off, server.pid)
        res = run_wrk(server.url, 1, 1, duration)
        time.sleep(0.1)  # a request wrk gave up on at the deadline may still be served
        hits = obj.percpu_sum("hits")
    finally:
        obj.close()
    return hits / max(1, res.requests), res.requests


