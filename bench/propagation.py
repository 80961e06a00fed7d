#!/usr/bin/env python3
"""What gotel costs a two-service Go chain, and what traceparent insertion adds to that.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/propagation.py            # ~6 min
    .venv/bin/python bench/propagation.py --quick    # ~2 min

One invocation measures, on this machine:

1. wrk -> A/chain -> B/chain: the demo service (src/gotel/demoapp) twice, A started with
   `-downstream` B, at 1 and 8 connections, in three modes per round (the order reversed
   every other round, medians reported):
     off     no gotel;
     probes  one `gotel attach --pid A --pid B` with the traceparent injector disabled by a
             launcher in this script (same uprobes and in-process parenting, no sockops or
             sk_msg program: B receives no traceparent);
     on      gotel as shipped.
   requests/s, CPU per request of A, B, wrk and gotel, gotel's CPU per 1000 spans, events
   lost, the injector's counters per request, TCP connections opened per request; one extra
   c8 run writes jsonl and checks that B's server spans are children of A's client spans;
2. what each step adds per request: probes - off, on - probes (insertion alone, with the
   run time of its sk_msg and sockops programs from kernel BPF stats), on - off; and
   bench/apps/hello with the server probe alone (as overhead.py), in the same rounds;
3. the ratio of the added time per request to (uprobe hits per request x hit cost): hits
   counted on gotel's planned sites in A and B under load, the hit cost measured on
   bench/apps/uprobecost as overhead.py does.

This is a script that prints numbers, not a test: it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    BENCH,
    CASES,
    CLK_TCK,
    DRAIN_WAIT_S,
    NCPU,
    SETTLE_S,
    Case,
    Children,
    GoService,
    TargetSummary,
    background_load,
    bench_main,
    bpf_programs,
    cpu_seconds,
    load_line,
    machine_ticks,
    med,
    program_names,
    run_wrk,
    start_gotel,
    step,
    stop_gotel,
)
from hitcost import HitCost, Site, compile_counter, count_site_hits, measure_hit_cost, plan_hits
from overhead import CaseResult, Server
from overhead import measure as measure_hello

from gotel.goelf import open_binary
from gotools import build_app

MODES = ("off", "probes", "on")
SERVICES = ("A", "B")
# `gotel` whose injector never starts: the session logs "traceparent out: off".
NO_INJECTOR = [sys.executable, "-c",
               "import sys; from gotel.instrumentation.sockinject.extension import TraceparentOut; "
               "TraceparentOut.start = lambda *a, **k: None; "
               "from gotel.cli import main; sys.exit(main())"]


# --------------------------------------------------------------------------- the chain


def start_service(children: Children, binary: Path, *flags: str) -> GoService:
    return GoService(children, binary, *flags)


class Chain:
    """B, then A calling B's /chain from its own."""

    def __init__(self, children: Children, binary: Path) -> None:
        self.b = start_service(children, binary)
        self.a = start_service(children, binary, "-downstream", f"http://{self.b.addr}")
        self.url = f"http://{self.a.addr}/chain"
        self.pids = {"A": self.a.pid, "B": self.b.pid}

    def get(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as resp:
            return resp.read().decode().strip()


def cgroup2_path(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return next((line.strip()[3:] for line in f if line.startswith("0::")), "?")


def tcp_active_opens() -> int:
    """Connections this machine has started (/proc/net/snmp Tcp ActiveOpens): with the
    default Transport's 2 idle connections per host, A dials anew under concurrency."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("ActiveOpens")])


@dataclass
class ChainSample:
    """One wrk run on the chain. CPU figures are seconds during the wrk run."""

    rps: float
    requests: int
    seconds: int
    cpu: dict[str, float]  # A, B, wrk, gotel
    machine_cpu: float
    busy: float
    opens: int
    errors: str
    gotel_cpu: float = 0.0  # gotel from wrk start until its ring buffers are drained
    targets: dict[str, TargetSummary] = field(default_factory=dict)
    out: dict[str, str] = field(default_factory=dict)  # traceparent out, as gotel said
    uprobes: dict[str, int] = field(default_factory=dict)
    bpf: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (ns, runs)

    def per_req(self, seconds: float) -> float:
        return 1e6 * seconds / max(1, self.requests)

    @property
    def ours(self) -> float:
        return sum(self.cpu.values())

    @property
    def other_share(self) -> float:
        return max(0.0, self.machine_cpu - self.ours) / (self.seconds * NCPU)

    @property
    def spans(self) -> int:
        return sum(t.spans or 0 for t in self.targets.values())

    @property
    def lost(self) -> int:
        return sum(t.lost for t in self.targets.values())


def measure_chain(children: Children, chain: Chain, case: Case, duration: float, mode: str,
                  exporter: str, output: str | None) -> ChainSample:
    run = None
    if mode != "off":
        run = start_gotel(children, list(chain.pids.values()), exporter, output,
                          NO_INJECTOR if mode == "probes" else None)
        want = "off" if mode == "probes" else "on"
        if any(v != want for v in run.traceparent_out.values()):  # the mode would be mislabelled
            children.end(run.proc)
            raise RuntimeError(f"{mode}: gotel said traceparent out {run.traceparent_out}")
    try:
        if run:
            time.sleep(SETTLE_S)
            g0, b0 = cpu_seconds(run.proc.pid), bpf_programs(run.proc.pid)
        p0 = {k: cpu_seconds(pid) for k, pid in chain.pids.items()}
        m0, o0 = machine_ticks(), tcp_active_opens()
        res = run_wrk(chain.url, case.threads, case.conns, duration)
        p1 = {k: cpu_seconds(pid) for k, pid in chain.pids.items()}
        m1, o1 = machine_ticks(), tcp_active_opens()
        busy, total = m1[0] - m0[0], m1[1] - m0[1]
        cpu = {k: p1[k] - p0[k] for k in p0} | {"wrk": res.cpu, "gotel": 0.0}
        sample = ChainSample(res.rps, res.requests, res.seconds, cpu, busy / CLK_TCK,
                             busy / max(1, total), o1 - o0, res.errors)
        if run:
            b1 = bpf_programs(run.proc.pid)
            names = program_names(b1)  # while gotel still holds them
            for i, (ns, runs) in b1.items():  # A's and B's copies of a program add up
                d_ns, d_runs = sample.bpf.get(names[i], (0, 0))
                before = b0.get(i, (0, 0))
                sample.bpf[names[i]] = (d_ns + ns - before[0], d_runs + runs - before[1])
            cpu["gotel"] = cpu_seconds(run.proc.pid) - g0
            time.sleep(DRAIN_WAIT_S)
            sample.gotel_cpu = cpu_seconds(run.proc.pid) - g0
    finally:
        summaries = stop_gotel(children, run) if run else {}
    if run:
        for k, pid in chain.pids.items():
            sample.targets[k] = summaries.get(pid, TargetSummary())
            sample.out[k] = run.traceparent_out.get(pid, "?")
            sample.uprobes[k] = run.uprobes.get(pid, 0)
    return sample


@dataclass
class Diff:
    """Medians of per-request figures of one mode minus another's."""

    wall_us: float  # 1/rps_x - 1/rps_y
    cpu_us: float  # A + B + wrk + gotel
    parts: dict[str, float]  # A, B, wrk, gotel
    bpf_us: float
    bpf_runs: float
    wall_range: tuple[float, float] = (0.0, 0.0)  # the same per round (x, y of one round)
    cpu_range: tuple[float, float] = (0.0, 0.0)


def round_ranges(x_rps: list[float], y_rps: list[float], x_cpu: list[float],
                 y_cpu: list[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """min and max over rounds of the differences within one round: how far apart single
    rounds put the added µs (the modes of one round ran back to back)."""
    walls = [1e6 * (1 / a - 1 / b) for a, b in zip(x_rps, y_rps, strict=True)]
    cpus = [a - b for a, b in zip(x_cpu, y_cpu, strict=True)]
    return (min(walls), max(walls)), (min(cpus), max(cpus))


def chain_diff(x: list[ChainSample], y: list[ChainSample]) -> Diff:
    def m(samples: list[ChainSample], value: Callable[[ChainSample], float]) -> float:
        return med([value(s) for s in samples])

    def d(value: Callable[[ChainSample], float]) -> float:
        return m(x, value) - m(y, value)

    bpf_ns = lambda s: sum(ns for ns, _ in s.bpf.values()) / 1e9  # noqa: E731
    bpf_runs = lambda s: sum(r for _, r in s.bpf.values()) / max(1, s.requests)  # noqa: E731
    return Diff(
        1e6 * (1 / m(x, lambda s: s.rps) - 1 / m(y, lambda s: s.rps)),
        d(lambda s: s.per_req(s.ours)),
        {k: d(lambda s, k=k: s.per_req(s.cpu[k])) for k in (*SERVICES, "wrk", "gotel")},
        d(lambda s: s.per_req(bpf_ns(s))),
        d(bpf_runs),
        *round_ranges([s.rps for s in x], [s.rps for s in y], [s.per_req(s.ours) for s in x],
                      [s.per_req(s.ours) for s in y]),
    )


# --------------------------------------------------------------------------- connected check


def connected_check(spans_file: Path, pids: dict[str, int]) -> str:
    """How the spans of the check run hang together across A and B."""
    names = {pid: k for k, pid in pids.items()}
    spans = [json.loads(line) for line in spans_file.open()]
    kinds = Counter((names.get(s["resource"].get("process.pid"), "?"), s["kind"]) for s in spans)
    by_id = {(s["trace_id"], s["span_id"]): s for s in spans}

    def parent(s: dict) -> tuple[str, str] | None:
        p = by_id.get((s["trace_id"], s["parent_span_id"]))
        return (names.get(p["resource"].get("process.pid"), "?"), p["kind"]) if p else None

    b_server = [s for s in spans if names.get(s["resource"].get("process.pid")) == "B"
                and s["kind"] == "SERVER"]
    a_client = [s for s in spans if names.get(s["resource"].get("process.pid")) == "A"
                and s["kind"] == "CLIENT"]
    b_linked = sum(parent(s) == ("A", "CLIENT") for s in b_server)
    b_remote = sum(bool(s["remote_parent"]) for s in b_server)
    a_linked = sum(parent(s) == ("A", "SERVER") for s in a_client)
    counts = ", ".join(f"{k} {kind.lower()} {n}" for (k, kind), n in sorted(kinds.items()))
    return (f"{len(spans)} spans ({counts});\n     B server spans whose parent is A's client "
            f"span: {b_linked} of {len(b_server)} ({100 * b_linked / max(1, len(b_server)):.1f}%)"
            f", with a remote parent: {b_remote}; A client spans under A's server span: "
            f"{a_linked} of {len(a_client)} ({100 * a_linked / max(1, len(a_client)):.1f}%)")


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds of off/probes/on per case, the order reversed every other "
                    "round (default 4)")
    ap.add_argument("--exporter", choices=("none", "jsonl"), default="none",
                    help="gotel's exporter in the timed runs; jsonl writes to /dev/null "
                    "(default none)")
    ap.add_argument("--calls", type=int, default=100_000,
                    help="probed calls per uprobe timing (default 100000)")
    ap.add_argument("--quick", action="store_true",
                    help="~2 min: 2 s runs, 3 rounds, 20000 probed calls")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.calls = 2.0, 3, 20_000
    if args.rounds < 1 or args.duration < 1 or args.calls < 1000:
        ap.error("need --rounds >= 1, --duration >= 1, --calls >= 1000")
    return bench_main("propagation", args, run)


@dataclass
class Hits:
    """Hits per request counted on each planned site (pid-filtered uprobes, gotel off)."""

    per_site: dict[tuple[str, Site], float]  # (service, site) -> hits per request
    requests: int

    def total(self, service: str | None = None, kind: str | None = None) -> float:
        return sum(v for (svc, site), v in self.per_site.items()
                   if service in (None, svc) and kind in (None, site.kind))

    def expected_us(self, cost: HitCost) -> float:
        return (self.total(kind="entry") * cost.added_us("entry")
                + self.total(kind="RET") * cost.added_us("ret"))


def count_hits(counter: Path, pids: dict[str, int], binary: Path, sites: list[Site], url: str,
               case: Case, duration: float) -> Hits:
    counted, requests = count_site_hits(counter, [(p, binary, sites) for p in pids.values()],
                                        url, case, duration)
    names = {pid: k for k, pid in pids.items()}
    return Hits({(names[pid], site): n / max(1, requests) for (pid, site), n in counted.items()},
                requests)


def run(args: argparse.Namespace, children: Children, tmp: Path, bpf_stats: bool) -> int:
    with step("building src/gotel/demoapp, bench/apps/hello, bench/apps/uprobecost"):
        demo = build_app("httpserver")
        hello = build_app(BENCH / "apps" / "hello", name="bench-hello")
        loop_bin = build_app(BENCH / "apps" / "uprobecost", name="bench-uprobecost")
        counter = compile_counter(tmp)
        demo_plan, hello_plan = plan_hits(demo), plan_hits(hello)
        with open_binary(demo) as gobin:
            go_version = gobin.go_version
    with step("background load"):
        load_before = background_load()

    output = "/dev/null" if args.exporter == "jsonl" else None
    chain = Chain(children, demo)
    server = Server(children, hello)
    first = chain.get()  # "traceparent=" and nothing: no gotel yet
    cgroup = cgroup2_path(chain.a.pid)
    with step("warm-up"):
        run_wrk(chain.url, 2, 8, 1)
        run_wrk(server.url, 2, 8, 1)

    chains = {c.name: {m: [] for m in MODES} for c in CASES}
    hellos = {c.name: CaseResult() for c in CASES}
    with step(f"{args.rounds} rounds x {len(CASES)} cases x (chain off/probes/on + hello "
              f"off/on), {args.duration:g} s each"):
        for rnd in range(args.rounds):
            for case in CASES:
                for mode in MODES if rnd % 2 == 0 else MODES[::-1]:
                    s = measure_chain(children, chain, case, args.duration, mode, args.exporter,
                                      output)
                    chains[case.name][mode].append(s)
                    print(f"  round {rnd + 1} {case.name} chain {mode:<6}: {s.rps:.0f} req/s",
                          file=sys.stderr, flush=True)
                for on in (False, True) if rnd % 2 == 0 else (True, False):
                    h = measure_hello(children, server, case, args.duration,
                                      (args.exporter, output) if on else None)
                    (hellos[case.name].on if on else hellos[case.name].off).append(h)
                    print(f"  round {rnd + 1} {case.name} hello {'on' if on else 'off':<6}: "
                          f"{h.rps:.0f} req/s", file=sys.stderr, flush=True)

    with step("connected check: one c8 chain run, gotel on, --exporter jsonl to a file"):
        spans_file = tmp / "spans.jsonl"
        spans_file.touch()
        check = measure_chain(children, chain, CASES[1], args.duration, "on", "jsonl",
                              str(spans_file))
        connected = connected_check(spans_file, chain.pids)

    with step("hits per request: counter programs on the planned sites"):
        dur = min(2.0, args.duration)
        hits = {c.name: count_hits(counter, chain.pids, demo, demo_plan.sites, chain.url, c, dur)
                for c in CASES}
        hello_hits = count_hits(counter, {"hello": server.pid}, hello, hello_plan.sites,
                                server.url, CASES[0], dur)
    for svc in (chain.a.proc, chain.b.proc, server.proc):
        children.end(svc)
    with step("uprobe hit cost on bench/apps/uprobecost"):
        cost = measure_hit_cost(children, loop_bin, counter, bare_calls=20_000_000,
                                probed_calls=args.calls, reps=3)
    with step("background load"):
        load_after = background_load()

    print(f"gotel connected-trace benchmark: {NCPU} CPUs, Linux {os.uname().release}"
          f", {go_version}, {args.rounds} rounds x {args.duration:g} s per wrk run, gotel "
          f"--exporter {args.exporter}{' --output /dev/null' if output else ''}")
    print(load_line(load_before, load_after))
    from propagation_report import report

    report(args, chains, hellos, check, connected, hits, hello_hits, cost,
           demo_plan.uprobes, hello_plan.uprobes, first, bpf_stats, cgroup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
