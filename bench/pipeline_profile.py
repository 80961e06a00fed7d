#!/usr/bin/env python3
"""Where gotel's own CPU goes per span, stage by stage and function by function.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/pipeline_profile.py              # ~25 s
    .venv/bin/python bench/pipeline_profile.py --seconds 20 --conns 16

bench/apps/hello runs under wrk while gotel, in this process, attaches to it and exports
OTLP/HTTP to bench/apps/otlpsink. Printed: gotel's own per-stage CPU per span (the same
accounting its last log line gives), then a second run under cProfile with the functions
that took the most time in the draining thread (cProfile inflates every call, so read its
figures as shares, not costs). A script that prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import (
    BENCH,
    Children,
    GoService,
    OtlpSink,
    bench_main,
    build_sink,
    cpu_seconds,
    step,
)

from gotel.config import make_config
from gotel.instrumentation.registry import all_probes
from gotel.supervisor import Supervisor
from gotel.target import process_from_pid
from gotools import build_app


def one_run(args: argparse.Namespace, server_pid: int, url: str, profiler: cProfile.Profile | None
            ) -> tuple[str, float, int]:
    """gotel attached for one wrk run: (its report line, CPU seconds, spans made)."""
    supervisor = Supervisor(make_config(exporter="otlp"), all_probes())
    supervisor.attach(process_from_pid(server_pid))
    stop = threading.Event()
    wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.conns}", f"-d{args.seconds}s", url],
                           stdout=subprocess.DEVNULL)
    threading.Thread(target=lambda: (wrk.wait(), time.sleep(0.5), stop.set()), daemon=True).start()
    cpu0 = time.process_time()
    if profiler:
        profiler.enable()
    try:
        supervisor.run(stop, exit_when_idle=False)
    finally:
        if profiler:
            profiler.disable()
        supervisor.close()
    cpu = time.process_time() - cpu0
    return supervisor.report(), cpu, supervisor.totals.spans


def run(args: argparse.Namespace, children: Children, tmp: Path, bpf_stats: bool) -> int:
    with step("building bench/apps/hello and bench/apps/otlpsink"):
        hello = build_app(BENCH / "apps" / "hello", name="bench-hello")
        sink = OtlpSink(children, build_sink())
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    server = GoService(children, hello)
    url = server.url
    logging.basicConfig(level=logging.WARNING, format="gotel: %(message)s")

    with step(f"wrk -c{args.conns} {args.seconds} s with gotel attached"):
        received = sink.spans()
        report, cpu, spans = one_run(args, server.pid, url, None)
        delivered = sink.spans() - received
    print(f"gotel profile: hello under wrk -t2 -c{args.conns} for {args.seconds} s, "
          "OTLP/HTTP to bench/apps/otlpsink")
    print(f"  {spans} spans made, {delivered} delivered; gotel's CPU (all its threads): "
          f"{cpu:.2f} s = {1e6 * cpu / max(1, spans):.2f} µs per span")
    print(f"  its own account: {report}")

    with step(f"the same run under cProfile (server CPU {cpu_seconds(server.pid):.0f} s so far)"):
        profiler = cProfile.Profile()
        _, cpu, spans = one_run(args, server.pid, url, profiler)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"\n  under cProfile (draining thread only): {spans} spans; the functions with the most "
          "time of their own:")
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    for line in lines[start:]:
        if line.strip():
            print("  " + line.replace(str(Path(sys.prefix)), "<venv>"))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=int, default=8, help="seconds per wrk run (default 8)")
    ap.add_argument("--conns", type=int, default=8, help="wrk connections (default 8)")
    ap.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    return bench_main("pipeline_profile", ap.parse_args(), run)


if __name__ == "__main__":
    sys.exit(main())
