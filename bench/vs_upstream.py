#!/usr/bin/env python3
"""gotel against the OpenTelemetry Go auto-instrumentation agent, on the same app, in one run.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/vs_upstream.py --go-agent-src DIR     # build the agent, then ~3 min
    .venv/bin/python bench/vs_upstream.py --go-agent BIN --quick  # an agent built before, ~1 min

DIR is a checkout of go.opentelemetry.io/auto (github.com/open-telemetry/opentelemetry-go-
instrumentation) at the release to compare with, v0.24.0 by default; the script builds it
natively the way its Makefile's `build` target does (`go generate` runs bpf2go with clang,
then a CGO-less `go build ./cli`) and keeps the binary under ~/.cache/gotel-bench, where
later runs find it without either flag. $GOTEL_GO_AGENT also names a binary.

bench/apps/hello runs under wrk -c1 and -c8; each round alternates the order of three
modes: no agent, `gotel attach`, the Go agent (`-target-pid`). Both agents export
OTLP/HTTP to one bench/apps/otlpsink, which counts what arrives. Printed per mode: req/s,
added µs per request (c1: latency), the agent's CPU per 1000 spans (from after attach to
its exit, so its final flush is in), spans delivered / requests served, peak RSS; then
gotel / Go agent ratios. It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    BENCH,
    CASES,
    SETTLE_S,
    Case,
    Children,
    GoService,
    Lines,
    OtlpSink,
    background_load,
    bench_main,
    build_sink,
    cpu_seconds,
    load_line,
    med,
    run_wrk,
    spread,
    start_gotel,
    step,
    stop_gotel,
)

from gotools import build_app, go_binary

AGENT_VERSION = "v0.24.0"
CACHE = Path.home() / ".cache" / "gotel-bench"
AGENT_READY_RE = re.compile(r"instrumentation loaded successfully")
MODES = ("off", "gotel", "go-agent")
SERVICE = "hello"


# --------------------------------------------------------------------------- the Go agent


def cached_agent(version: str) -> Path:
    return CACHE / f"otel-go-instrumentation-{version}"


def build_agent(src: Path, version: str) -> Path:
    """The agent's Makefile `build` without docker: bpf2go (through `go generate`) compiles
    its BPF C with the host clang, then the CLI is linked without cgo."""
    if not (src / "cli" / "main.go").exists() or not (src / "internal" / "include").is_dir():
        raise SystemExit(f"vs_upstream: {src} is not a checkout of go.opentelemetry.io/auto "
                         "(no cli/main.go, internal/include)")
    out = cached_agent(version)
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", BPF2GO_MAKEBASE=str(src),
               BPF2GO_CFLAGS=f"-I{src}/internal/include/libbpf -I{src}/internal/include")
    go = go_binary()
    for argv in ([go, "generate", "./internal/..."], [go, "build", "-o", str(out), "./cli"]):
        done = subprocess.run(argv, cwd=src, env=env, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise SystemExit(f"vs_upstream: `{' '.join(argv[1:])}` failed in {src}:\n"
                             + (done.stderr or done.stdout)[-3000:])
    return out


def agent_binary(args: argparse.Namespace) -> Path:
    if args.go_agent_src:
        CACHE.mkdir(parents=True, exist_ok=True)
        return build_agent(Path(args.go_agent_src).resolve(), args.version)
    for candidate in (args.go_agent, os.environ.get("GOTEL_GO_AGENT"),
                      str(cached_agent(args.version))):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit(f"vs_upstream: no Go agent binary: pass --go-agent-src with a checkout "
                     f"of go.opentelemetry.io/auto at {args.version}, or --go-agent BIN")


# --------------------------------------------------------------------------- one run


@dataclass
class Sample:
    rps: float
    requests: int
    agent_cpu: float = 0.0  # seconds, from after attach to the agent's exit
    delivered: int = 0  # spans the receiver got from this run
    rss_kib: int = 0  # the agent's peak resident set (VmHWM)
    ready_s: float = 0.0  # agent start -> attached


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, case: str, mode: str, sample: Sample) -> None:
        self.samples.setdefault((case, mode), []).append(sample)

    def get(self, case: str, mode: str) -> list[Sample]:
        return self.samples.get((case, mode), [])


def peak_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reap_cpu(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """SIGTERM, wait for the exit (the agent flushes its spans first) and return the
    process's whole CPU time from the kernel's rusage of the reaped child."""
    proc.terminate()
    result: list[tuple[int, int, object]] = []
    waiter = threading.Thread(target=lambda: result.append(os.wait4(proc.pid, 0)), daemon=True)
    waiter.start()
    waiter.join(timeout)
    if not result:
        proc.kill()
        waiter.join(10)
    if not result:
        raise RuntimeError(f"pid {proc.pid} did not exit")
    _, status, usage = result[0]
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime  # type: ignore[attr-defined]


def run_go_agent(children: Children, binary: Path, server_pid: int, url: str, case: Case,
                 duration: float) -> Sample:
    t0 = time.monotonic()
    proc = children.start([str(binary), "-target-pid", str(server_pid)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    assert proc.stderr is not None
    log = Lines(proc.stderr)
    if log.wait_for(AGENT_READY_RE, 120) is None:
        children.end(proc)
        log.join(5)
        raise RuntimeError("the Go agent did not attach:\n  " + "\n  ".join(log.lines[-10:]))
    ready = time.monotonic() - t0
    time.sleep(SETTLE_S)
    cpu0 = cpu_seconds(proc.pid)
    res = run_wrk(url, case.threads, case.conns, duration)
    rss = peak_rss_kib(proc.pid)
    cpu = reap_cpu(proc) - cpu0
    children.end(proc)  # forget it
    log.join(5)
    return Sample(res.rps, res.requests, cpu, rss_kib=rss, ready_s=ready)


def run_gotel(children: Children, server_pid: int, url: str, case: Case,
              duration: float) -> Sample:
    t0 = time.monotonic()
    run = start_gotel(children, [server_pid], "otlp", None)
    ready = time.monotonic() - t0
    time.sleep(SETTLE_S)
    cpu0 = cpu_seconds(run.proc.pid)
    res = run_wrk(url, case.threads, case.conns, duration)
    rss = peak_rss_kib(run.proc.pid)
    cpu = reap_cpu(run.proc) - cpu0
    stop_gotel(children, run)  # the reaped process's log: its exit status and report
    return Sample(res.rps, res.requests, cpu, rss_kib=rss, ready_s=ready)


# --------------------------------------------------------------------------- report


def report(results: Results, rounds: int, duration: float) -> None:
    head = (f"{'case':<5}{'mode':<10}{'req/s':>9}{'±':>8}{'added µs/req':>14}"
            f"{'CPU s/1000 spans':>18}{'delivered/requests':>20}{'peak RSS':>10}"
            f"{'attach s':>10}")
    print(head)
    print("-" * len(head))
    figures: dict[tuple[str, str], dict[str, float]] = {}
    for case in CASES:
        off = med([s.rps for s in results.get(case.name, "off")])
        for mode in MODES:
            ss = results.get(case.name, mode)
            if not ss:
                continue
            rps = med([s.rps for s in ss])
            requests = sum(s.requests for s in ss)
            delivered = sum(s.delivered for s in ss)
            cpu = sum(s.agent_cpu for s in ss)
            f = figures[(case.name, mode)] = {
                "rps": rps,
                "added": 1e6 * (1 / rps - 1 / off),
                "cpu_per_1000": 1000 * cpu / max(1, delivered),
                "delivered": delivered / max(1, requests),
            }
            line = f"{case.name:<5}{mode:<10}{rps:>9.0f}{spread([s.rps for s in ss]):>8}"
            if mode != "off":
                line += (f"{f['added']:>14.2f}{f['cpu_per_1000']:>18.3f}"
                         f"{f'{delivered}/{requests}':>20}"
                         f"{max(s.rss_kib for s in ss) / 1024:>8.0f}MB"
                         f"{med([s.ready_s for s in ss]):>10.2f}")
            print(line)
    print(f"   medians over {rounds} rounds of {duration:g} s; ± = half the range of req/s;")
    print("   added µs/req = 1/rps(mode) - 1/rps(off): at c1 the latency each request gains;")
    print("   CPU = the agent process's utime+stime from after attach (+0.3 s) to its exit, "
          "final flush included,")
    print("   per span delivered to the receiver; attach = agent start -> it says it is "
          "attached")
    print("\nRATIOS gotel / Go agent (below 1: gotel does better, except delivered and req/s)")
    for case in CASES:
        g, a = figures.get((case.name, "gotel")), figures.get((case.name, "go-agent"))
        if not g or not a:
            continue
        print(f"   {case.name}: added µs/req {g['added'] / a['added']:.2f}x; "
              f"CPU per span {g['cpu_per_1000'] / a['cpu_per_1000']:.2f}x; "
              f"req/s {g['rps'] / a['rps']:.2f}x; delivered {g['delivered']:.4f} vs "
              f"{a['delivered']:.4f}")


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, children: Children, _tmp: Path, _bpf_stats: bool) -> int:
    with step("Go agent binary" + (f" (building {args.go_agent_src})" if args.go_agent_src
                                   else "")):
        agent = agent_binary(args)
    with step("building bench/apps/hello and bench/apps/otlpsink"):
        hello = build_app(BENCH / "apps" / "hello", name="bench-hello")
        sink = OtlpSink(children, build_sink())
    # Both agents read the standard OTLP settings; one receiver counts what each delivers.
    os.environ.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
                      OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_SERVICE_NAME=SERVICE,
                      OTEL_TRACES_EXPORTER="otlp")
    load_before = background_load()
    server = GoService(children, hello)
    with step("warm-up"):
        run_wrk(server.url, 2, 8, 1)
    results = Results()
    with step(f"{args.rounds} rounds x {len(CASES)} cases x {len(MODES)} modes, "
              f"{args.duration:g} s each"):
        for rnd in range(args.rounds):
            for case in CASES:
                order = MODES[rnd % len(MODES):] + MODES[: rnd % len(MODES)]
                for mode in order:
                    before = sink.spans()
                    if mode == "off":
                        res = run_wrk(server.url, case.threads, case.conns, args.duration)
                        sample = Sample(res.rps, res.requests)
                    elif mode == "gotel":
                        sample = run_gotel(children, server.pid, server.url, case,
                                           args.duration)
                    else:
                        sample = run_go_agent(children, agent, server.pid, server.url, case,
                                              args.duration)
                    sample.delivered = sink.spans() - before
                    results.add(case.name, mode, sample)
                    print(f"  round {rnd + 1} {case.name} {mode}: {sample.rps:.0f} req/s, "
                          f"{sample.delivered}/{sample.requests} spans", file=sys.stderr,
                          flush=True)
    load_after = background_load()
    stats = sink.stats()
    print(f"gotel vs go.opentelemetry.io/auto {args.version} ({agent}): bench/apps/hello, "
          f"{os.cpu_count()} CPUs, Linux {os.uname().release}; both export OTLP/HTTP to "
          "bench/apps/otlpsink")
    print(load_line(load_before, load_after))
    print(f"receiver: {stats['spans']} spans in {stats['requests']} requests, "
          f"{stats['bad_requests']} bad requests\n")
    report(results, args.rounds, args.duration)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--go-agent", metavar="BIN", help="an otel-go-instrumentation binary")
    ap.add_argument("--go-agent-src", metavar="DIR",
                    help="a checkout of go.opentelemetry.io/auto to build the agent from")
    ap.add_argument("--version", default=AGENT_VERSION,
                    help=f"the agent release the binary is cached as (default {AGENT_VERSION})")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds; each starts the mode order one further (default 3)")
    ap.add_argument("--quick", action="store_true", help="2 s runs, 3 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2.0, 3
    if args.rounds < 1 or args.duration < 1:
        ap.error("need --rounds >= 1 and --duration >= 1")
    return bench_main("vs_upstream", args, run)


if __name__ == "__main__":
    sys.exit(main())
