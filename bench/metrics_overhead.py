#!/usr/bin/env python3
"""What gotel's RED metrics cost: the same attached server with metrics off and on.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/metrics_overhead.py            # ~1 min
    .venv/bin/python bench/metrics_overhead.py --quick    # ~25 s

bench/apps/hello under wrk (8 connections), gotel attached in every run with no trace
sampled (OTEL_TRACES_SAMPLER=always_off: no span events, so that only the metrics
differ; the uprobes fire all the same), alternating
OTEL_METRICS_EXPORTER=none (the kernel does not count) and =otlp (counted in the kernel,
read and sent every second, 60x the default interval, to tests/otlp_receiver.py). Per
request it prints, off and on: uprobe hits (the runs of gotel's BPF programs, from the
kernel's BPF stats), BPF run time, server CPU, gotel CPU; and the requests the last
metrics export counted against those wrk and the server saw.

This is a script that prints numbers, not a test: it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    BENCH,
    Case,
    Children,
    GoService,
    bench_main,
    bpf_programs,
    cpu_seconds,
    med,
    run_wrk,
    spread,
    start_gotel,
    step,
    stop_gotel,
)

from gotools import build_app
from otlp_receiver import Receiver

CASE = Case("c8", 2, 8)
METRIC = "http.server.request.duration"


@dataclass
class Sample:
    requests: int
    rps: float
    hits: int  # runs of gotel's BPF programs: one per uprobe hit
    bpf_ns: int
    server_cpu: float
    gotel_cpu: float  # from wrk start until its exporter had time to send
    uprobes: int
    counted: int | None = None  # requests in the last metrics export (metrics on)

    def per_req(self, value: float) -> float:
        return value / max(1, self.requests)


def measure(children: Children, server: GoService, duration: float, metrics: bool,
            receiver: Receiver) -> Sample:
    os.environ["OTEL_METRICS_EXPORTER"] = "otlp" if metrics else "none"
    run = start_gotel(children, [server.pid], "none", None)
    try:
        time.sleep(0.3)
        g0, s0, b0 = cpu_seconds(run.proc.pid), cpu_seconds(server.pid), bpf_programs(run.proc.pid)
        res = run_wrk(server.url, CASE.threads, CASE.conns, duration)
        s1, b1 = cpu_seconds(server.pid), bpf_programs(run.proc.pid)
        time.sleep(1.2)  # one more export interval: its reading and sending count too
        g1 = cpu_seconds(run.proc.pid)
    finally:
        stop_gotel(children, run)
    runs = sum(r - b0.get(i, (0, 0))[1] for i, (_, r) in b1.items())
    ns = sum(n - b0.get(i, (0, 0))[0] for i, (n, _) in b1.items())
    sample = Sample(res.requests, res.rps, runs, ns, s1 - s0, g1 - g0, run.uprobes[server.pid])
    if metrics:
        # Cumulative per attach: the newest point of this run (one series: GET, no route).
        time.sleep(0.5)
        newest = max((p for p in receiver.metric_points() if p["name"] == METRIC),
                     key=lambda p: p["time_unix_nano"], default=None)
        sample.counted = newest["count"] if newest else 0
    return sample


def run(args: argparse.Namespace, children: Children, tmp: Path, bpf_stats: bool) -> int:
    with step("building bench/apps/hello"):
        hello = build_app(BENCH / "apps" / "hello", name="bench-hello")
    off: list[Sample] = []
    on: list[Sample] = []
    with Receiver(tmp / "spans.jsonl") as receiver:
        os.environ.update(receiver.otlp_env())
        os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
        os.environ["OTEL_TRACES_SAMPLER"] = "always_off"
        server = GoService(children, hello)
        run_wrk(server.url, 2, 8, 1)  # warm-up
        with step(f"{args.rounds} rounds x metrics off/on, {args.duration:g} s each"):
            for rnd in range(args.rounds):
                for metrics in ((False, True) if rnd % 2 == 0 else (True, False)):
                    sample = measure(children, server, args.duration, metrics, receiver)
                    (on if metrics else off).append(sample)
    if not bpf_stats:
        print("note: kernel BPF stats unavailable: hits and BPF time read 0")

    def m(samples: list[Sample], f: Callable[[Sample], float]) -> float:
        return med([f(s) for s in samples])

    print(f"gotel RED metrics, bench/apps/hello, wrk {CASE.conns} connections, "
          f"{args.rounds} rounds x {args.duration:g} s; no trace sampled in either")
    print(f"{'':28}{'metrics off':>14}{'metrics on':>14}{'on - off':>12}")
    rows = [
        ("requests/s", lambda s: s.rps, "{:.0f}"),
        ("uprobes attached", lambda s: s.uprobes, "{:.0f}"),
        ("uprobe hits per request", lambda s: s.per_req(s.hits), "{:.3f}"),
        ("BPF run time ns/request", lambda s: s.per_req(s.bpf_ns), "{:.0f}"),
        ("server CPU µs/request", lambda s: s.per_req(s.server_cpu * 1e6), "{:.2f}"),
        ("gotel CPU µs/request", lambda s: s.per_req(s.gotel_cpu * 1e6), "{:.3f}"),
    ]
    for label, f, fmt in rows:
        a, b = m(off, f), m(on, f)
        print(f"{label:28}{fmt.format(a):>14}{fmt.format(b):>14}{fmt.format(b - a):>12}")
    rps_off, rps_on = spread([s.rps for s in off]), spread([s.rps for s in on])
    print(f"requests/s spread: off {rps_off}, on {rps_on}")
    window = args.duration + 1.2
    print(f"gotel CPU per run of {window:.1f} s (~{window:.0f} exports at a 1 s interval): "
          f"off {m(off, lambda s: s.gotel_cpu) * 1000:.1f} ms, "
          f"on {m(on, lambda s: s.gotel_cpu) * 1000:.1f} ms")
    for s in on:
        print(f"counted by the metrics: {s.counted} requests; wrk completed {s.requests} "
              "(wrk does not count requests still in flight when it stops)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=4, help="off/on rounds (default 4)")
    ap.add_argument("--quick", action="store_true", help="~25 s: 2 s runs, 2 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2.0, 2
    if args.rounds < 1 or args.duration < 1:
        ap.error("need --rounds >= 1, --duration >= 1")
    return bench_main("metrics_overhead", args, run)


if __name__ == "__main__":
    sys.exit(main())
