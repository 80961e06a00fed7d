#!/usr/bin/env python3
"""What gotel costs a Go HTTP server, and how much of that the uprobes explain.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/overhead.py            # ~2.5 min
    .venv/bin/python bench/overhead.py --quick    # ~45 s

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
import statistics
import sys
import time
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
    OtlpSink,
    background_load,
    bench_main,
    bpf_programs,
    build_sink,
    cpu_seconds,
    load_line,
    machine_ticks,
    med,
    program_names,
    run_wrk,
    spread,
    start_gotel,
    step,
    stop_gotel,
)
from hitcost import HitCost, PlanHits, compile_counter, count_site_hits, measure_hit_cost, plan_hits

from gotel.goelf import open_binary
from gotools import build_app

# --------------------------------------------------------------------------- server runs

@dataclass
class Sample:
    """One wrk run. CPU figures are seconds during the wrk run unless said otherwise."""

    rps: float
    requests: int
    seconds: int
    server_cpu: float
    wrk_cpu: float
    machine_cpu: float  # busy time summed over all CPUs (every process, softirq, ...)
    busy: float  # machine utilisation, 0..1
    gotel_cpu_run: float = 0.0  # gotel during the wrk run
    gotel_cpu: float = 0.0  # gotel from wrk start until its ring buffers are drained
    lost: int = 0
    spans: int | None = None  # gotel's own count, from its summary line on exit
    uprobes: int = 0  # what gotel said it attached
    delivered: int | None = None  # spans the OTLP receiver counted (otlp runs)
    stages: dict[str, float] = field(default_factory=dict)  # gotel CPU µs/span by stage
    # gotel's BPF programs during the wrk run (when kernel BPF stats are on)
    bpf: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (ns, runs)

    @property
    def bpf_ns(self) -> int:
        return sum(ns for ns, _ in self.bpf.values())

    @property
    def bpf_runs(self) -> int:
        return sum(runs for _, runs in self.bpf.values())
    errors: str = ""

    @property
    def spans_made(self) -> int:
        """gotel's count, else the requests it did not report lost."""
        return self.requests - self.lost if self.spans is None else self.spans

    def per_req(self, seconds: float) -> float:
        return 1e6 * seconds / max(1, self.requests)

    @property
    def ours_cpu(self) -> float:
        """server + wrk + gotel. Loopback TCP work runs in their contexts (as softirq on
        their stacks), so it is in here too."""
        return self.server_cpu + self.wrk_cpu + self.gotel_cpu_run

    @property
    def other_share(self) -> float:
        """Share of the machine busy outside our processes: other tenants, kernel threads.
        Shown as a share of time, not per request: background load divided by fewer
        requests would look like a cost of gotel."""
        return max(0.0, self.machine_cpu - self.ours_cpu) / (self.seconds * NCPU)


@dataclass
class CaseResult:
    off: list[Sample] = field(default_factory=list)
    on: list[Sample] = field(default_factory=list)


Server = GoService  # bench/apps/hello; propagation.py imports it from here


def measure(
    children: Children,
    server: Server,
    case: Case,
    duration: float,
    gotel: tuple[str, str | None] | None,
    sink: OtlpSink | None = None,
) -> Sample:
    """One wrk run; with `gotel` = (exporter, output) it runs attached."""
    received = sink.spans() if sink and gotel else 0
    run = start_gotel(children, [server.pid], *gotel) if gotel else None
    try:
        if run:
            time.sleep(SETTLE_S)
            g0 = cpu_seconds(run.proc.pid)
            b0 = bpf_programs(run.proc.pid)
        s0, m0 = cpu_seconds(server.pid), machine_ticks()
        res = run_wrk(server.url, case.threads, case.conns, duration)
        s1, m1 = cpu_seconds(server.pid), machine_ticks()
        if run:
            b1 = bpf_programs(run.proc.pid)
        busy, total = m1[0] - m0[0], m1[1] - m0[1]
        sample = Sample(res.rps, res.requests, res.seconds, s1 - s0, res.cpu, busy / CLK_TCK,
                        busy / max(1, total), errors=res.errors)
        if run:
            sample.uprobes = run.uprobes[server.pid]
            names = program_names(b1)  # while gotel still holds them
            sample.bpf = {
                names[i]: (ns - b0.get(i, (0, 0))[0], runs - b0.get(i, (0, 0))[1])
                for i, (ns, runs) in b1.items()
            }
            sample.gotel_cpu_run = cpu_seconds(run.proc.pid) - g0
            time.sleep(DRAIN_WAIT_S)
            sample.gotel_cpu = cpu_seconds(run.proc.pid) - g0
    finally:
        summary = stop_gotel(children, run)[server.pid] if run else None
    if summary:
        sample.spans, sample.lost = summary.spans, summary.lost
    if run:
        sample.stages = run.stages
        if sink and gotel and gotel[0] == "otlp":
            sample.delivered = sink.spans() - received  # gotel flushed before it exited
    return sample


# --------------------------------------------------------------------------- report


@dataclass
class Derived:
    """One case's medians and the differences on - off."""

    rps_off: float
    rps_on: float
    wall_us: float  # 1/rps_on - 1/rps_off
    cpu_us: float  # server + wrk + gotel CPU per request, on - off
    server_us: float  # server CPU per request, on - off
    gotel_us: float  # gotel CPU per request (it only runs when on)
    wrk_us: float  # wrk CPU per request, on - off
    bpf_us: float  # gotel's BPF programs' run time per request (0 without BPF stats)
    bpf_runs: float  # their runs per request: the hits, seen by the kernel
    spans: int  # requests - lost over the attached runs
    lost: int
    requests_on: int
    gotel_cpu: float  # seconds over the attached runs, until drained
    captured_per_s: float  # spans gotel got per second of an attached run (median)



def derive(r: CaseResult) -> Derived:
    def m(samples: list[Sample], value: Callable[[Sample], float]) -> float:
        return med([value(s) for s in samples])

    rps_off, rps_on = m(r.off, lambda s: s.rps), m(r.on, lambda s: s.rps)
    return Derived(
        rps_off,
        rps_on,
        1e6 * (1 / rps_on - 1 / rps_off),
        m(r.on, lambda s: s.per_req(s.ours_cpu)) - m(r.off, lambda s: s.per_req(s.ours_cpu)),
        m(r.on, lambda s: s.per_req(s.server_cpu)) - m(r.off, lambda s: s.per_req(s.server_cpu)),
        m(r.on, lambda s: s.per_req(s.gotel_cpu_run)),
        m(r.on, lambda s: s.per_req(s.wrk_cpu)) - m(r.off, lambda s: s.per_req(s.wrk_cpu)),
        m(r.on, lambda s: s.per_req(s.bpf_ns / 1e9)),
        m(r.on, lambda s: s.bpf_runs / max(1, s.requests)),
        sum(s.spans_made for s in r.on),
        sum(s.lost for s in r.on),
        sum(s.requests for s in r.on),
        sum(s.gotel_cpu for s in r.on),
        m(r.on, lambda s: s.spans_made / s.seconds),
    )


def print_throughput(results: dict[str, CaseResult]) -> None:
    head = (f"{'case':<5}{'gotel':<6}{'req/s':>9}{'±':>8}{'server':>9}{'wrk':>7}{'gotel':>7}"
            f"{'sum':>7}{'busy':>7}{'other':>7}{'lost/req':>10}")
    print(f"{'':<28}{'- CPU µs per request -':^30}{'machine':^14}")
    print(head)
    print("-" * len(head))
    for case in CASES:
        r = results[case.name]
        for label, samples in (("off", r.off), ("on", r.on)):
            rps = [s.rps for s in samples]

            def per_req(value: Callable[[Sample], float], ss: list[Sample] = samples) -> float:
                return med([s.per_req(value(s)) for s in ss])

            gotel = f"{per_req(lambda s: s.gotel_cpu_run):.1f}" if label == "on" else "-"
            lost = (f"{sum(s.lost for s in samples) / sum(s.requests for s in samples):.3f}"
                    if label == "on" else "-")
            print(f"{case.name:<5}{label:<6}{med(rps):>9.0f}{spread(rps):>8}"
                  f"{per_req(lambda s: s.server_cpu):>9.1f}{per_req(lambda s: s.wrk_cpu):>7.1f}"
                  f"{gotel:>7}{per_req(lambda s: s.ours_cpu):>7.1f}"
                  f"{100 * med([s.busy for s in samples]):>6.0f}%"
                  f"{100 * med([s.other_share for s in samples]):>6.0f}%{lost:>10}")
        per_round = "  ".join(f"{s.rps:.0f}/{t.rps:.0f}" for s, t in zip(r.off, r.on, strict=True))
        print(f"      req/s per round, off/on: {per_round}")
    print("   CPU = utime+stime of each process during the wrk run (loopback TCP work is "
          "charged to them);")
    print("   busy = machine utilisation; other = share of the machine busy outside these "
          "processes (other tenants: noise)")
    errors = {s.errors for r in results.values() for s in r.off + r.on if s.errors}
    for e in sorted(errors):
        print(f"   wrk reported: {e}")


def print_stages(results: dict[str, CaseResult], exporter: str) -> None:
    """gotel's CPU per span by stage (its own thread-CPU accounting, medians over rounds),
    and what the receiver got."""
    stages = ["drain", "decode", "describe", "encode", "assemble", "send"]
    print(f"   where gotel's CPU goes, µs per span ({exporter}; gotel's own per-stage thread "
          "CPU; total = its process CPU, all threads and the kernel's share)")
    print(f"   {'case':<5}" + "".join(f"{name:>9}" for name in stages)
          + f"{'sum':>8}{'total':>8}{'delivered/spans':>17}")
    for case in CASES:
        on = results[case.name].on
        row = [med([smp.stages.get(name, 0.0) for smp in on]) for name in stages]
        total = med([smp.per_req(smp.gotel_cpu) for smp in on])
        delivered = sum(smp.delivered or 0 for smp in on)
        made = sum(smp.spans_made for smp in on)
        got = (f"{delivered}/{made}" if any(smp.delivered is not None for smp in on) else "-")
        print(f"   {case.name:<5}" + "".join(f"{v:>9.2f}" for v in row)
              + f"{sum(row):>8.2f}{total:>8.2f}{got:>17}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="off/on rounds per case; even, so each side goes first equally often "
                    "(default 4)")
    ap.add_argument("--exporter", choices=("otlp", "none", "jsonl"), default="otlp",
                    help="gotel's exporter in the timed runs: otlp sends OTLP/HTTP to "
                    "bench/apps/otlpsink; jsonl writes to /dev/null (default otlp)")
    ap.add_argument("--calls", type=int, default=100_000,
                    help="probed calls per uprobe timing (default 100000)")
    ap.add_argument("--quick", action="store_true",
                    help="~45 s: 2 s runs, 3 rounds, 20000 probed calls")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.calls = 2.0, 3, 20_000
    if args.rounds < 1 or args.duration < 1 or args.calls < 1000:
        ap.error("need --rounds >= 1, --duration >= 1, --calls >= 1000")
    return bench_main("overhead", args, run)


@dataclass
class SpanCheck:
    sample: Sample
    spans: int  # lines gotel wrote to its jsonl file


def run(args: argparse.Namespace, children: Children, tmp: Path, bpf_stats: bool) -> int:
    with step("building bench/apps/hello, bench/apps/uprobecost, uprobecost.bpf.c"):
        hello = build_app(BENCH / "apps" / "hello", name="bench-hello")
        loop_bin = build_app(BENCH / "apps" / "uprobecost", name="bench-uprobecost")
        counter = compile_counter(tmp)
        plan = plan_hits(hello)
        with open_binary(hello) as gobin:
            go_version = gobin.go_version
    with step("background load"):
        load_before = background_load()

    output = "/dev/null" if args.exporter == "jsonl" else None
    results = {c.name: CaseResult() for c in CASES}
    sink = None
    if args.exporter == "otlp":
        with step("building and starting bench/apps/otlpsink (the OTLP receiver)"):
            sink = OtlpSink(children, build_sink())
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint  # gotel inherits it
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    server = Server(children, hello)
    with step("warm-up"):
        run_wrk(server.url, 2, 8, 1)

    with step(f"{args.rounds} rounds x {len(CASES)} cases x off/on, {args.duration:g} s each"):
        for rnd in range(args.rounds):
            for case in CASES:
                # Alternate which side goes first: a slow drift then biases neither.
                for on in ((False, True) if rnd % 2 == 0 else (True, False)):
                    sample = measure(children, server, case, args.duration,
                                     (args.exporter, output) if on else None, sink)
                    (results[case.name].on if on else results[case.name].off).append(sample)
                    print(f"  round {rnd + 1} {case.name} {'on ' if on else 'off'}: "
                          f"{sample.rps:.0f} req/s", file=sys.stderr, flush=True)

    with step("span count check: one c8 run with --exporter jsonl to a file"):
        spans_file = tmp / "spans.jsonl"
        sample = measure(children, server, CASES[1], args.duration, ("jsonl", str(spans_file)))
        with open(spans_file, "rb") as f:
            check = SpanCheck(sample, sum(1 for _ in f))

    with step("hits per request: counter program on the plan's offsets"):
        counted, requests = count_site_hits(counter, [(server.pid, hello, plan.sites)],
                                            server.url, CASES[0], min(2.0, args.duration))
        hits = (sum(counted.values()) / max(1, requests), requests)
    children.end(server.proc)

    with step("uprobe hit cost on bench/apps/uprobecost"):
        cost = measure_hit_cost(children, loop_bin, counter, bare_calls=20_000_000,
                                probed_calls=args.calls, reps=3)
    with step("background load"):
        load_after = background_load()

    print(f"gotel overhead benchmark: {NCPU} CPUs, Linux {os.uname().release}, {go_version}, "
          f"{args.rounds} rounds x {args.duration:g} s per wrk run, gotel --exporter "
          f"{args.exporter}{' --output /dev/null' if output else ''}"
          f"{' (OTLP/HTTP to bench/apps/otlpsink)' if sink else ''}")
    print(load_line(load_before, load_after))
    report(args, results, plan, cost, check, hits, bpf_stats)
    return 0


def report(
    args: argparse.Namespace,
    results: dict[str, CaseResult],
    plan: PlanHits,
    cost: HitCost,
    check: SpanCheck,
    hits: tuple[float, int],
    bpf_stats: bool,
) -> None:
    d = {name: derive(r) for name, r in results.items()}
    c1, c8 = d["c1"], d["c8"]

    print("\n== 1. wrk -> bench/apps/hello ('hello' handler, GOMAXPROCS default), without and "
          "with gotel attached")
    print("   c1 = wrk -t1 -c1, c8 = wrk -t2 -c8; medians over rounds, ± = half the range")
    print_throughput(results)

    print("\n   gotel's own CPU (utime+stime of its process, wrk start until its ring buffers "
          f"are drained {DRAIN_WAIT_S:g} s later);")
    counted = all(s.spans is not None for r in results.values() for s in r.on)
    print("   spans = " + ("gotel's own count (its summary line on exit)" if counted else
                          "requests served while attached - events lost (no summary line)"))
    for name, x in d.items():
        print(f"   {name}: {x.gotel_cpu:.2f} s for {x.spans} spans = "
              f"{1000 * x.gotel_cpu / max(1, x.spans):.3f} CPU s per 1000 spans; "
              f"lost {x.lost} of {x.requests_on} events "
              f"({100 * x.lost / max(1, x.requests_on):.1f}%); "
              f"captured {x.captured_per_s:.0f} spans/s; requests - spans - lost = "
              f"{x.requests_on - x.spans - x.lost:+d}")
    print_stages(results, args.exporter)
    s = check.sample
    unaccounted = s.requests - check.spans - s.lost
    print(f"   span-count check (c8, --exporter jsonl to a file): {s.requests} requests, "
          f"{check.spans} spans written, {s.lost} lost, {unaccounted:+d} unaccounted; "
          f"{1000 * s.gotel_cpu / max(1, check.spans):.3f} CPU s per 1000 spans; "
          f"{s.rps:.0f} req/s")
    if abs(unaccounted) > max(16, s.requests // 100):
        print("   WARNING: spans + lost do not add up to the requests served")

    print("\n== 2. One uprobe hit: bench/apps/uprobecost, a loop calling //go:noinline "
          "main.target; counting BPF program")
    print("   ns/call = this thread's CPU time per call (the uprobe's trap, program and "
          "single-step are")
    print("   charged to it; other processes taking the CPU are not); wall = elapsed, for "
          "comparison")
    print(f"   {'setup':<14}{'ns/call':>10}   {'repetitions':<30}{'wall':>10}"
          f"{'added per call':>16}")
    rows = (("bare", "bare", ""), ("entry", "entry probe", f"on `{cost.entry_insn}`"),
            ("ret", "RET probe", f"on `{cost.ret_insn}`"),
            ("both", "entry + RET",
             f"(sum of the two: {cost.added_us('entry') + cost.added_us('ret'):.2f} µs)"))
    for key, label, note in rows:
        reps = " ".join(f"{v:.1f}" for v in cost.timings[key])
        added = f"{cost.added_us(key):.2f} µs" if key != "bare" else ""
        wall = statistics.median(cost.wall[key])
        print(f"   {label:<14}{cost.ns(key):>10.1f}   {reps:<30}{wall:>10.1f}{added:>16}  {note}")
    # A signal (Go's SIGURG preemption, every 10 ms of a busy loop) that lands while the
    # kernel steps the probed instruction makes it run, and hit, again: a few extra hits
    # are expected; fewer would mean the probe was not where the loop runs.
    extra = cost.hits_counted - cost.hits_expected
    verdict = "ok" if 0 <= extra <= cost.hits_expected // 100 else "SUSPECT"
    print(f"   BPF counter: {cost.hits_counted} hits for {cost.hits_expected} probed calls "
          f"({extra:+d}: re-hits after signals) {verdict}; {args.calls} calls per timing, "
          "median of 3")
    if cost.counter_ns is not None:
        print(f"   of each hit, the counting program itself ran {cost.counter_ns:.0f} ns "
              "(kernel BPF stats): the rest is the uprobe mechanism")

    entry_us, ret_us = cost.added_us("entry"), cost.added_us("ret")
    expected = plan.entries * entry_us + plan.rets * ret_us
    print(f"\n== 3. Ratios. gotel's plan for the hello binary: {', '.join(plan.probes)}: "
          f"{plan.uprobes} uprobes")
    print(f"   per request: {plan.entries} entry hit(s) [{', '.join(plan.entry_insns)}] + "
          f"{plan.rets} RET hit(s) = {plan.entries + plan.rets} hits; counted under load: "
          f"{hits[0]:.3f} hits/request over {hits[1]} requests")
    attached = {s.uprobes for r in results.values() for s in r.on} | {check.sample.uprobes}
    if attached != {plan.uprobes}:
        print(f"   WARNING: gotel attached {sorted(attached)} uprobes, the plan has {plan.uprobes}")
    print(f"   expected uprobe cost per request = {plan.entries} x {entry_us:.2f} + "
          f"{plan.rets} x {ret_us:.2f} = {expected:.2f} µs")
    print("   added wall µs/req = 1/rps_on - 1/rps_off (medians). With one connection (c1) a "
          "request is")
    print("     only sent when the previous one is answered, so 1/rps is each request's round "
          "trip and")
    print("     the difference is the latency gotel adds to every request. With 8 connections "
          "it is")
    print("     machine time per request, which hides cost that runs in parallel: use CPU there.")
    print("   added CPU µs/req = (server + wrk + gotel) CPU per request, on - off; of which")
    print("     server Δ = the target's share (uprobe traps and BPF programs run on its "
          "threads),")
    print("     gotel = the agent's own CPU, wrk Δ = the load generator's.")
    print("   BPF = run time of gotel's BPF programs per request (kernel BPF stats, read from "
          "gotel's")
    print("     program fds; part of server Δ), runs = their runs per request"
          + ("" if bpf_stats else ": UNAVAILABLE (BPF_ENABLE_STATS failed)"))
    per_prog: dict[str, list[int]] = {}
    for r in results.values():
        for smp in r.on:
            for name, (ns, runs) in smp.bpf.items():
                acc = per_prog.setdefault(name, [0, 0])
                acc[0] += ns
                acc[1] += runs
    if per_prog:
        print("     per program, all attached runs: " + ", ".join(
            f"{name} {ns / max(1, runs) / 1000:.2f} µs/run" for name, (ns, runs) in
            sorted(per_prog.items())))
    print("   ratio = added / expected: 1 means the uprobe traps are the whole cost; above 1, "
          "the rest is")
    print("     the BPF programs' own work, gotel's Python and contention for the 2 CPUs.")
    head = (f"   {'case':<5}{'wall µs':>8}{'CPU µs':>8}{'server Δ':>9}{'BPF':>6}{'runs':>6}"
            f"{'gotel':>7}{'wrk Δ':>7}{'expected':>9}{'wall ratio':>11}{'CPU ratio':>10}"
            f"{'server ratio':>13}")
    print(head)
    for name, x in d.items():
        print(f"   {name:<5}{x.wall_us:>8.2f}{x.cpu_us:>8.2f}{x.server_us:>9.2f}{x.bpf_us:>6.2f}"
              f"{x.bpf_runs:>6.2f}{x.gotel_us:>7.2f}{x.wrk_us:>7.2f}{expected:>9.2f}"
              f"{x.wall_us / expected:>11.2f}{x.cpu_us / expected:>10.2f}"
              f"{x.server_us / expected:>13.2f}")

    def pct(x: Derived) -> str:
        return f"{x.rps_off:.0f} -> {x.rps_on:.0f} req/s ({100 * (x.rps_on / x.rps_off - 1):+.1f}%)"

    spans = c1.spans + c8.spans
    lost = c1.lost + c8.lost
    requests = c1.requests_on + c8.requests_on
    print("\nHEADLINES")
    print(f"throughput c1: {pct(c1)};  c8: {pct(c8)}")
    print(f"c1 added latency per request: {c1.wall_us:.2f} µs = {c1.wall_us / expected:.2f} x "
          f"the uprobe cost ({plan.entries + plan.rets} hits = {expected:.2f} µs)")
    print(f"c8 added CPU per request (server + wrk + gotel): {c8.cpu_us:.2f} µs = "
          f"{c8.cpu_us / expected:.2f} x the uprobe cost")
    print(f"c8 added server CPU per request: {c8.server_us:.2f} µs = "
          f"{c8.server_us / expected:.2f} x the uprobe cost; = {expected:.2f} uprobe traps + "
          f"{c8.bpf_us:.2f} BPF programs + {c8.server_us - expected - c8.bpf_us:.2f} unexplained")
    print(f"uprobe hit: entry {entry_us:.2f} µs, RET {ret_us:.2f} µs "
          f"(RET/entry {ret_us / entry_us:.2f})")
    print(f"gotel CPU per 1000 spans: {1000 * (c1.gotel_cpu + c8.gotel_cpu) / max(1, spans):.3f}"
          f" s ({args.exporter}); {1000 * s.gotel_cpu / max(1, check.spans):.3f} s (jsonl to a "
          "file)")
    print(f"events lost: {lost} of {requests} ({100 * lost / max(1, requests):.1f}%) in the "
          f"attached runs; gotel captured at most {max(c1.captured_per_s, c8.captured_per_s):.0f}"
          " spans/s")


if __name__ == "__main__":
    sys.exit(main())
