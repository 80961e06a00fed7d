#!/usr/bin/env python3
"""What one gotel costs as the number of traced processes grows: BPF programs, maps, links
and locked memory it holds, its RSS and CPU idle and under load, attach and detach times.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/many_targets.py                  # 1, 10 and 50 targets, ~3 min
    .venv/bin/python bench/many_targets.py --counts 1,5 --load-seconds 3

For each count N it starts N copies of the demo HTTP server (src/gotel/demoapp), one
`gotel attach --pid ...` for all of them (--exporter none; --toolchains builds them with
several Go releases, i.e. several offsets layouts), and reads gotel's BPF objects
from the fdinfo of its file descriptors (unique program, map and link ids; `memlock` summed
over its maps: what the kernel charges for them). CPU is gotel's own, idle for
--idle-seconds, then while a thread pool sends requests round-robin to every target for
--load-seconds. It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    Children,
    GoService,
    bench_main,
    cpu_seconds,
    start_gotel,
    step,
    stop_gotel,
)

from gotools import build_app

MiB = 1 << 20
# enum bpf_prog_type numbers fdinfo gives, for the ones gotel loads (uprobes are kprobe-type).
PROG_TYPES = {"2": "uprobe", "5": "tracepoint", "13": "sock_ops", "16": "sk_msg"}


@dataclass
class Held:
    """The BPF objects a process holds open, by kind (unique kernel ids)."""

    programs: Counter[str] = field(default_factory=Counter)  # prog_type -> count
    maps: int = 0
    links: int = 0
    memlock: int = 0  # bytes, summed over the maps


def held_by(pid: int) -> Held:
    held = Held()
    progs: dict[int, str] = {}
    maps: dict[int, int] = {}
    links: set[int] = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in f)}
        except OSError:
            continue
        if "link_id" in info:
            links.add(int(info["link_id"]))
        elif "prog_id" in info:
            kind = info.get("prog_type", "?")
            progs[int(info["prog_id"])] = PROG_TYPES.get(kind, f"type {kind}")
        elif "map_id" in info:
            maps[int(info["map_id"])] = int(info.get("memlock", "0"))
    held.programs = Counter(progs.values())
    held.maps, held.links, held.memlock = len(maps), len(links), sum(maps.values())
    return held


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def load(urls: list[str], seconds: float, workers: int = 8) -> int:
    """Requests round-robin over urls from a thread pool for `seconds`; how many were made."""
    done = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(start: int) -> None:
        nonlocal done
        i, mine = start, 0
        while time.monotonic() < deadline:
            with urllib.request.urlopen(urls[i % len(urls)], timeout=10) as r:
                r.read()
            i, mine = i + 1, mine + 1
        with lock:
            done += mine

    with ThreadPoolExecutor(workers) as pool:
        for w in range(workers):
            pool.submit(worker, w)
    return done


@dataclass
class Row:
    targets: int
    uprobes: int
    held: Held
    attach_s: float
    rss: int
    idle_pct: float
    requests: int
    cpu_us_per_request: float
    detach_s: float


def measure(children: Children, binaries: list[Path], n: int, args: argparse.Namespace) -> Row:
    with step(f"{n} targets: starting them"):
        services = [GoService(children, binaries[i % len(binaries)]) for i in range(n)]
    with step(f"{n} targets: attaching one gotel"):
        t0 = time.monotonic()
        run = start_gotel(children, [s.pid for s in services], "none", None)
        attach_s = time.monotonic() - t0
    time.sleep(1.0)  # start-up work done
    held = held_by(run.proc.pid)
    with step(f"{n} targets: idle {args.idle_seconds:g} s, then load {args.load_seconds:g} s"):
        c0 = cpu_seconds(run.proc.pid)
        time.sleep(args.idle_seconds)
        idle = cpu_seconds(run.proc.pid) - c0
        c1 = cpu_seconds(run.proc.pid)
        requests = load([f"{s.base}/hello/bench" for s in services], args.load_seconds)
        busy = cpu_seconds(run.proc.pid) - c1
        rss = rss_bytes(run.proc.pid)
    t1 = time.monotonic()
    stop_gotel(children, run)
    detach_s = time.monotonic() - t1
    for s in services:
        children.end(s.proc)
    return Row(n, sum(run.uprobes.values()), held, attach_s, rss,
               100 * idle / args.idle_seconds, requests,
               1e6 * busy / max(1, requests), detach_s)


def run(args: argparse.Namespace, children: Children, _tmp: Path, _stats: bool) -> int:
    with step("building the demo HTTP server"):
        binaries = [build_app("httpserver", toolchain=t) for t in args.toolchains or [None]]
    rows = [measure(children, binaries, n, args) for n in args.counts]
    kinds = sorted({k for r in rows for k in r.held.programs})
    builds = f", built by {len(binaries)} Go releases in turn" if args.toolchains else ""
    print(f"one gotel for N demo HTTP servers{builds} (net/http server and client probes, "
          "socket injector), --exporter none")
    header = (f"{'N':>4}{'uprobes':>9}{'programs':>10}{'maps':>6}{'links':>7}"
              f"{'memlock MiB':>13}{'RSS MiB':>9}{'attach s':>10}{'idle CPU %':>12}"
              f"{'req':>7}{'CPU µs/req':>12}{'detach s':>10}")
    print(header)
    for r in rows:
        print(f"{r.targets:>4}{r.uprobes:>9}{sum(r.held.programs.values()):>10}{r.held.maps:>6}"
              f"{r.held.links:>7}{r.held.memlock / MiB:>13.1f}{r.rss / MiB:>9.1f}"
              f"{r.attach_s:>10.2f}{r.idle_pct:>12.2f}{r.requests:>7}"
              f"{r.cpu_us_per_request:>12.1f}{r.detach_s:>10.2f}")
    print("programs by type: " + "; ".join(
        f"N={r.targets}: " + ", ".join(f"{k} {r.held.programs[k]}" for k in kinds) for r in rows))
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        scale = (b.targets / a.targets) if a.targets else 0
        print(f"N={a.targets} -> N={b.targets} ({scale:.0f}x targets): programs "
              f"{sum(b.held.programs.values()) / max(1, sum(a.held.programs.values())):.1f}x, "
              f"memlock {b.held.memlock / max(1, a.held.memlock):.1f}x, "
              f"RSS {b.rss / max(1, a.rss):.1f}x")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--counts", default="1,10,50",
                    help="numbers of targets, comma-separated (default 1,10,50)")
    ap.add_argument("--idle-seconds", type=float, default=5.0, help="default 5")
    ap.add_argument("--load-seconds", type=float, default=5.0, help="default 5")
    ap.add_argument("--toolchains", default="",
                    help="Go releases to build the targets with, used in turn (e.g. "
                         "go1.21.13,go1.22.12: several offsets layouts); default: the local Go")
    args = ap.parse_args()
    args.toolchains = [t for t in args.toolchains.split(",") if t.strip()]
    try:
        args.counts = [int(c) for c in args.counts.split(",") if c.strip()]
    except ValueError:
        ap.error("--counts takes integers, e.g. 1,10,50")
    if not args.counts or min(args.counts) < 1:
        ap.error("--counts needs numbers >= 1")
    return bench_main("many_targets", args, run)


if __name__ == "__main__":
    sys.exit(main())
