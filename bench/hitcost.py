"""What one uprobe hit costs (bench/apps/uprobecost and a counting BPF program), and where
gotel's plan puts uprobes in a binary, with the hits those sites really take per request."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchlib import BENCH, Case, Children, Lines, bpf_run_time, run_wrk

from gotel.ebpf import BpfObject, Link
from gotel.goelf import open_binary
from gotel.instrumentation.registry import all_probes
from gotel.planning import ProbePlan, plan_probes

# --------------------------------------------------------------------------- uprobe cost


@dataclass
class HitCost:
    """CPU ns per call of main.target, one list per setup (one value per repetition):
    bare, entry (uprobe on its first instruction), ret (on its RET), both (what one
    request pays on the server probe). Thread CPU rather than wall time, so that other
    processes taking the CPU away do not count as probe cost; wall is kept to show it."""

    timings: dict[str, list[float]]
    wall: dict[str, list[float]]
    entry_insn: str
    ret_insn: str
    hits_counted: int  # what the BPF program counted over every probed timing
    hits_expected: int  # probed calls x probes per call
    counter_ns: float | None  # the counting program's own run time per hit (BPF stats)

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

    def ns_per_call(self, n: int, timeout: float) -> tuple[float, float]:
        """(wall, thread CPU) ns per call over n calls."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n".encode())
        self.proc.stdin.flush()
        line = self.out.next_line(timeout)
        m = re.match(r"ns/call ([\d.]+) cpu-ns/call ([\d.]+) calls", line or "")
        if not m:
            raise RuntimeError(f"uprobecost: unexpected reply {line!r}")
        return float(m.group(1)), float(m.group(2))


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
        wall: dict[str, list[float]] = {k: [] for k in timings}

        def timed(name: str, calls: int, timeout: float) -> None:
            w, c = loop.ns_per_call(calls, timeout)
            wall[name].append(w)
            timings[name].append(c)

        counted = expected = 0
        prog0 = bpf_run_time(os.getpid())  # the counter is the only BPF program we hold now
        # Interleaved repetitions: a drift in CPU frequency or load hits every setup alike.
        for _ in range(reps):
            timed("bare", bare_calls, 60)
            for name, offsets in setups.items():
                links: list[Link] = [obj.attach_uprobe("count_hit", binary, off, loop.proc.pid)
                                     for off in offsets]
                before = obj.percpu_sum("hits")
                try:
                    timed(name, probed_calls, probed_timeout)
                finally:
                    for link in links:
                        link.destroy()
                counted += obj.percpu_sum("hits") - before
                expected += probed_calls * len(offsets)
        prog1 = bpf_run_time(os.getpid())
    finally:
        obj.close()
        children.end(loop.proc)
    runs = prog1[1] - prog0[1]
    return HitCost(timings, wall, instruction_at(binary, entry), instruction_at(binary, ret),
                   counted, expected, (prog1[0] - prog0[0]) / runs if runs else None)

# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Site:
    """Where one hook puts its uprobes: the function's entry, or all its RETs (exactly one
    RET of a returning hook runs per call)."""

    probe: str
    function: str
    kind: str  # "entry" or "RET"
    offsets: tuple[int, ...]
    insn: str  # the instruction the (first) uprobe sits on

    @property
    def label(self) -> str:
        short = self.function.removeprefix("net/http.").replace("(*", "").replace(")", "")
        return f"{short} {self.kind}"


@dataclass
class PlanHits:
    entries: int  # uprobe hits per request at function entries
    rets: int  # and at RETs
    uprobes: int  # uprobes attached (every RET of every hook)
    probes: list[str]
    offsets: list[int]  # every attached file offset, for the hit-count check
    entry_insns: list[str]
    sites: list[Site]


def plan_hits(binary: Path) -> PlanHits:
    """gotel's probe plan for a binary, as uprobe sites."""
    with open_binary(binary) as gobin:
        plans: list[ProbePlan] = [p for p in plan_probes(gobin, all_probes()) if p.applies]
    if not plans:
        raise RuntimeError(f"no gotel probe applies to {binary}")
    for p in plans:
        if not p.probe.bpf_object.exists():
            raise SystemExit(f"bench: {p.probe.bpf_object} missing: run `make bpf` first")
    sites: list[Site] = []
    for p in plans:
        for h in p.hooks:
            name = h.function.name
            if h.hook.entry:
                off = h.function.file_offset
                sites.append(Site(p.probe.name, name, "entry", (off,), instruction_at(binary, off)))
            if h.hook.returns and h.return_offsets:
                offs = tuple(h.return_offsets)
                sites.append(Site(p.probe.name, name, "RET", offs, instruction_at(binary, offs[0])))
    return PlanHits(
        sum(s.kind == "entry" for s in sites), sum(s.kind == "RET" for s in sites),
        sum(p.uprobe_count for p in plans), [p.probe.name for p in plans],
        [o for s in sites for o in s.offsets], [s.insn for s in sites if s.kind == "entry"],
        sites)


def count_site_hits(
    counter_obj: Path, targets: Sequence[tuple[int, Path, Sequence[Site]]], url: str,
    case: Case, duration: float,
) -> tuple[dict[tuple[int, Site], int], int]:
    """Real hits on each (pid, site) during one wrk run, and the requests served: checks
    the plan's per-request figures (a site that is not on the request path shows 0). One
    counting object per site, each with its own counter."""
    objs: dict[tuple[int, Site], BpfObject] = {}
    try:
        for pid, binary, sites in targets:
            for site in sites:
                obj = objs[(pid, site)] = BpfObject(counter_obj)
                obj.load()
                for off in site.offsets:
                    obj.attach_uprobe("count_hit", binary, off, pid)
        res = run_wrk(url, case.threads, case.conns, duration)
        time.sleep(0.1)  # a request wrk gave up on at the deadline may still be served
        hits = {key: obj.percpu_sum("hits") for key, obj in objs.items()}
    finally:
        for obj in objs.values():
            obj.close()
    return hits, res.requests
