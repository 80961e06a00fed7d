"""Helpers shared by bench/overhead.py and bench/propagation.py: child processes, CPU and
BPF run-time accounting, wrk, and running `gotel attach` on one or several pids."""

from __future__ import annotations

import argparse
import json
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
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))  # gotools: the shared Go build helper

from gotel.ebpf import libbpf  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
ATTACH_TIMEOUT_S = 60.0  # gotel analyses the binary and loads BPF before it says "attached"
STOP_TIMEOUT_S = 30.0
# gotel drains its ring buffers every 20 ms; this leaves it many timer ticks to
# consume the last events before its CPU time is read.
DRAIN_WAIT_S = 0.4
SETTLE_S = 0.3  # after attach: let gotel's start-up work finish before CPU is sampled

# gotel's line per target once its probes are in (traceparent out: since the injector).
ATTACHED_RE = re.compile(r"pid (\d+) \(.*\): attached (\d+)/(\d+) probes \((\d+) uprobes\)"
                         r"(?:, traceparent out: (\w+))?")
LOST_RE = re.compile(r"pid (\d+): .*lost (\d+) events")
# gotel's last lines for a target: its own count of spans, events and losses, and what the
# traceparent injector did with the messages it saw.
SUMMARY_RE = re.compile(r"pid (\d+): detached(?: in \d+ ms)?; (\d+) spans from (\d+) events, "
                        r"(\d+) events lost(?:, (\d+) undecodable)?")
INJECTION_RE = re.compile(r"pid (\d+): traceparent insertion: (.*)$")
# gotel's very last line: where every span went, and its CPU per span by stage.
REPORT_RE = re.compile(r"spans: (\d+) exported(?:, (\d+) dropped \(([^)]*)\))?.*?"
                       r"(?:; agent CPU per span: (.*))?$")
STAGE_RE = re.compile(r"(\w+) ([\d.]+) µs")


# --------------------------------------------------------------------------- processes


class Children:
    """Every process the benchmark starts, so that one finally-block can end them all."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], **popen_args: Any) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), **popen_args)
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
            except (OSError, subprocess.SubprocessError):
                pass  # keep going: the others must still be ended


class GoService:
    """A Go test service on a free loopback port: started with `-addr 127.0.0.1:0 FLAGS`, it
    prints `listening on ADDR` first (bench/apps/hello, tests/apps/*, src/gotel/demoapp)."""

    def __init__(self, children: Children, binary: Path, *flags: str) -> None:
        self.proc = children.start([str(binary), "-addr", "127.0.0.1:0", *flags],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.out = Lines(self.proc.stdout)
        m = self.out.wait_for(re.compile(r"listening on (\S+)"), 30)
        if m is None:
            raise RuntimeError(f"{binary.name} did not start")
        self.addr = m.group(1)
        self.base = f"http://{self.addr}"
        self.url = f"{self.base}/"
        self.pid = self.proc.pid


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
    # user nice system idle iowait irq softirq steal: guest time is already in user, and
    # steal (the hypervisor running someone else) is neither ours nor idle, so not busy.
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


class BpfStats:
    """The kernel's BPF run-time accounting (BPF_ENABLE_STATS): on while our fd is open, so
    it goes off by itself however the benchmark ends. Costs two clock reads per program
    run, for every BPF program on the machine while on."""

    def __init__(self) -> None:
        fd = libbpf.lib().bpf_enable_stats(0)  # BPF_STATS_RUN_TIME
        self.fd: int | None = fd if fd >= 0 else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def bpf_programs(pid: int) -> dict[int, tuple[int, int]]:
    """prog id -> (run_time_ns, run_cnt) for the BPF programs a process holds, from the
    fdinfo of its program fds: exactly that process's programs, whoever else runs BPF."""
    progs: dict[int, tuple[int, int]] = {}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue  # closed meanwhile
        if "run_time_ns" in info and "prog_id" in info:  # not a link or map fd
            progs[int(info["prog_id"])] = (int(info["run_time_ns"]), int(info["run_cnt"]))
    return progs


def bpf_run_time(pid: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) summed over a process's BPF programs."""
    progs = bpf_programs(pid).values()
    return sum(ns for ns, _ in progs), sum(runs for _, runs in progs)


def program_names(ids: Iterable[int]) -> dict[int, str]:
    """Names of BPF programs by id, from bpftool when it is installed (else the ids)."""
    names = {i: f"prog {i}" for i in ids}
    if names and shutil.which("bpftool"):
        out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True,
                             text=True, timeout=30, check=False)
        try:
            for prog in json.loads(out.stdout or "[]"):
                if prog.get("id") in names:
                    names[prog["id"]] = prog.get("name", names[prog["id"]])
        except ValueError:
            pass  # keep the ids
    return names


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    requests: int
    errors: str  # wrk's socket-error / non-2xx lines, empty when clean
    cpu: float  # wrk's own CPU seconds: the load generator shares the 2 CPUs
    seconds: int  # the run's length


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
    return WrkResult(float(rps.group(1)), int(total.group(1)), errors, children_cpu() - cpu0,
                     seconds)


# --------------------------------------------------------------------------- gotel


def gotel_command() -> list[str]:
    beside = Path(sys.executable).with_name("gotel")  # the venv's console script
    if beside.exists():
        return [str(beside)]
    found = shutil.which("gotel")
    if not found:
        raise SystemExit("bench: gotel not found (run with the project's .venv/bin/python)")
    return [found]


@dataclass
class GotelRun:
    proc: subprocess.Popen[bytes]
    log: Lines
    uprobes: dict[int, int]  # pid -> uprobes attached
    traceparent_out: dict[int, str]  # pid -> "on" / "off" ("?" from a gotel without it)
    # From its last line, once stopped: spans exported and dropped, CPU µs/span by stage.
    exported: int | None = None
    dropped: int = 0
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class TargetSummary:
    """gotel's own account of one target, from its log when it detaches."""

    spans: int | None = None  # None: gotel printed no summary line
    events: int = 0
    lost: int = 0
    undecodable: int = 0
    injection: dict[str, int] = field(default_factory=dict)  # reason -> messages


def start_gotel(children: Children, pids: Sequence[int], exporter: str, output: str | None,
                command: Sequence[str] | None = None) -> GotelRun:
    """`gotel attach --pid ...` for every pid; returns once each one is attached. `command`
    replaces the gotel executable (e.g. a launcher that patches it)."""
    argv = [*(command or gotel_command()), "attach", "--exporter", exporter]
    for pid in pids:
        argv += ["--pid", str(pid)]
    if output:
        argv += ["--output", output]
    proc = children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    assert proc.stderr is not None
    log = Lines(proc.stderr)
    run = GotelRun(proc, log, {}, {})
    while len(run.uprobes) < len(pids):
        m = log.wait_for(ATTACHED_RE, ATTACH_TIMEOUT_S)
        if m is None:
            children.end(proc)
            log.join(5)
            raise RuntimeError("gotel did not attach:\n  " + "\n  ".join(log.lines[-20:]))
        run.uprobes[int(m.group(1))] = int(m.group(4))
        run.traceparent_out[int(m.group(1))] = m.group(5) or "?"
    return run


def stop_gotel(children: Children, run: GotelRun) -> dict[int, TargetSummary]:
    """SIGTERM (gotel detaches and flushes), then its summary per pid from its log."""
    rc = children.end(run.proc)
    run.log.join(10)
    if rc != 0:
        raise RuntimeError(f"gotel exited {rc}:\n  " + "\n  ".join(run.log.lines[-20:]))
    out = {pid: TargetSummary() for pid in run.uprobes}
    for line in run.log.lines:
        if m := REPORT_RE.search(line):
            run.exported, run.dropped = int(m.group(1)), int(m.group(2) or 0)
            run.stages = {k: float(v) for k, v in STAGE_RE.findall(m.group(4) or "")}
        if m := SUMMARY_RE.search(line):
            s = out.setdefault(int(m.group(1)), TargetSummary())
            s.spans, s.events, s.lost = int(m.group(2)), int(m.group(3)), int(m.group(4))
            s.undecodable = int(m.group(5) or 0)
        elif m := INJECTION_RE.search(line):
            s = out.setdefault(int(m.group(1)), TargetSummary())
            for item in m.group(2).split(","):
                name, _, count = item.strip().rpartition(" ")
                if count.isdigit():
                    s.injection[name] = int(count)
    for pid, s in out.items():
        if s.spans is None:  # older gotel: each warning gives the losses since the last one
            s.lost = sum(int(m.group(2)) for line in run.log.lines
                         if (m := LOST_RE.search(line)) and int(m.group(1)) == pid)
    return out


class OtlpSink:
    """bench/apps/otlpsink: a Go OTLP receiver that decodes every request and counts spans.

    Every OTLP exporter of a run (gotel, the Go agent) meets the same receiver, fast enough
    not to be the bottleneck; `endpoint` is for OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self, children: Children, binary: Path, *args: str) -> None:
        self.proc = children.start([str(binary), *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.out = Lines(self.proc.stdout)
        m = self.out.wait_for(re.compile(r"ready http=(\d+) grpc=(\d+)"), 30)
        if m is None:
            raise RuntimeError("otlpsink did not start")
        self.http_port, self.grpc_port = int(m.group(1)), int(m.group(2))
        self.endpoint = f"http://127.0.0.1:{self.http_port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint}/stats", timeout=10) as response:
            return json.loads(response.read())

    def spans(self) -> int:
        return int(self.stats()["spans"])


def build_sink() -> Path:
    from gotools import build_app

    return build_app(BENCH / "apps" / "otlpsink", name="bench-otlpsink")


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Case:
    name: str
    threads: int
    conns: int


CASES = (Case("c1", 1, 1), Case("c8", 2, 8))


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """Half the range in % of the median: how much the rounds disagree."""
    m = med(values)
    return f"±{50 * (max(values) - min(values)) / m:.1f}%" if m else "-"


def background_load(seconds: float = 1.0) -> float:
    """Machine utilisation while nothing of ours runs: other tenants' noise."""
    b0, t0 = machine_ticks()
    time.sleep(seconds)
    b1, t1 = machine_ticks()
    return (b1 - b0) / max(1, t1 - t0)


def load_line(before: float, after: float) -> str:
    return (f"background load (nothing of ours running): {100 * before:.0f}% of the machine "
            f"before, {100 * after:.0f}% after"
            + ("  <- another workload is running: expect noise" if max(before, after) > 0.05
               else ""))


@contextmanager
def step(title: str) -> Iterator[None]:
    """Progress on stderr, so that stdout is the report alone."""
    print(f"[{time.strftime('%H:%M:%S')}] {title} ...", file=sys.stderr, flush=True)
    yield


def bench_main(name: str, args: argparse.Namespace,
               run: Callable[[argparse.Namespace, Children, Path, bool], int]) -> int:
    """Checks (root, wrk, clang), then run(args, children, tmpdir, bpf_stats) with every
    child ended and kernel BPF stats off again however it ends."""
    if os.geteuid() != 0:
        print(f"{name}: needs root (BPF uprobes)", file=sys.stderr)
        return 3
    for tool in ("wrk", "clang"):
        if not shutil.which(tool):
            print(f"{name}: {tool} not found", file=sys.stderr)
            return 3

    # SIGTERM (e.g. a CI timeout) unwinds through the finally below, as Ctrl-C does.
    def on_term(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    children = Children()
    t_start = time.monotonic()
    # On for the whole run, so that gotel's programs (loaded by another process) are timed.
    stats = BpfStats()
    try:
        with tempfile.TemporaryDirectory(prefix="gotel-bench-") as tmp:
            return run(args, children, Path(tmp), stats.fd is not None)
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return 130
    finally:
        children.end_all()
        stats.close()
        print(f"(total wall time {time.monotonic() - t_start:.0f} s)", file=sys.stderr)
