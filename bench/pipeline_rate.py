#!/usr/bin/env python3
"""How many spans per second gotel's own pipeline sustains, with nothing lost, and at what
CPU and memory; and how long a `gotel attach` takes to deliver its first span.

Run as root from the repository (BPF objects built with `make bpf`):

    .venv/bin/python bench/pipeline_rate.py                     # 50000 spans/s for 60 s
    .venv/bin/python bench/pipeline_rate.py --rate 80000 --seconds 20
    .venv/bin/python bench/pipeline_rate.py --outage 60 --seconds 80   # collector down 60 s

Why a replay: on this 2-core VM a uprobe hit costs 5-16 µs and a server span takes two
(entry and RET), so real requests cannot make 50k spans/s here whatever the agent does
(bench/overhead.py measures that side, and `--real` below shows the ceiling). What this
script measures is the agent's part at such a rate:

1. attach -> first span: `gotel attach --pid` (the CLI, as a user runs it) on
   bench/apps/hello already under wrk load, timed until bench/apps/otlpsink has a span;
2. capture: gotel (in this process) attached to hello under wrk; the server probe's
   ring records are kept as they are drained (real events of a real program);
3. replay: the events ring is swapped for one that serves those records, cycled, at
   exactly --rate records/s; everything after it is gotel's as shipped (the drain loop,
   decode, describe, encode, the export pipeline, OTLP/HTTP to the receiver). Records the
   pipeline does not take in time pile up as they would in the kernel's ring; past the
   ring's size they are counted lost;
4. with --outage N, the receiver is killed 5 s into the replay and restarted on the same
   port N s later: gotel must keep running with bounded memory, count what it drops, and
   resume exporting by itself.

Printed: spans made, exported, delivered (receiver), dropped and lost; the agent's CPU in
% of one core and µs per span by stage; its RSS at start, peak and end. It asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import (
    BENCH,
    Children,
    GoService,
    Lines,
    OtlpSink,
    bench_main,
    build_sink,
    gotel_command,
    run_wrk,
    step,
)

from gotel.config import make_config
from gotel.ebpf.ringbuf import record_stride
from gotel.instrumentation.registry import all_probes
from gotel.shared_objects import ProbeUse
from gotel.supervisor import Supervisor
from gotel.target import process_from_pid
from gotools import build_app

SERVER_PROBE = "net/http server"
OUTAGE_AT_S = 5


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class TeeRing:
    """Wraps a real ring: hands on what it drains and keeps up to `keep` fixed-size records."""

    def __init__(self, ring: object, keep: int) -> None:
        self.ring, self.keep = ring, keep
        self.blocks: list[bytes] = []
        self.count = 0

    def drain_block(self, record_size: int, limit: int | None = None) -> tuple[bytes, int]:
        block, count = self.ring.drain_block(record_size, limit)  # type: ignore[attr-defined]
        if count and self.count < self.keep:
            self.blocks.append(block)
            self.count += count
        return block, count

    def drain(self, limit: int | None = None) -> list[bytes]:
        return self.ring.drain(limit)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.ring.close()  # type: ignore[attr-defined]


class PacedRing:
    """Serves recorded records at a fixed rate, as a ring the kernel fills would hold them:
    what is due and not drained waits, up to the ring's capacity; beyond it is lost."""

    def __init__(self, ring: object, templates: bytes, count: int, record_size: int,
                 rate: float, capacity: int) -> None:
        self.ring = ring  # the real one, closed with this
        self.templates, self.count = templates, count
        self.stride = record_stride(record_size)
        self.rate, self.capacity = rate, capacity
        self.start = time.monotonic()
        self.served = self.lost = 0
        self.pos = 0
        self.stopped = False

    def due(self) -> int:
        return 0 if self.stopped else int(self.rate * (time.monotonic() - self.start)) - (
            self.served + self.lost)

    def drain_block(self, record_size: int, limit: int | None = None) -> tuple[bytes, int]:
        due = self.due()
        if due > self.capacity:  # the kernel's ring would be full: those are lost
            self.lost += due - self.capacity
            due = self.capacity
        n = min(due, self.count - self.pos, limit if limit is not None else due)
        if n <= 0:
            return b"", 0
        block = self.templates[self.pos * self.stride:(self.pos + n) * self.stride]
        self.pos = (self.pos + n) % self.count
        self.served += n
        return block, n

    def drain(self, limit: int | None = None) -> list[bytes]:
        return []

    def close(self) -> None:
        self.ring.close()  # type: ignore[attr-defined]


def server_probe(supervisor: Supervisor, pid: int) -> ProbeUse:
    return next(lp for lp in supervisor.sessions[pid].loaded if lp.plan.probe.name == SERVER_PROBE)


def first_span(children: Children, sink: OtlpSink, pid: int, url: str) -> tuple[float, float]:
    """(seconds to 'attached', seconds to the first span at the receiver) for the CLI."""
    wrk = subprocess.Popen(["wrk", "-t1", "-c2", "-d20s", url], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        before = sink.spans()
        t0 = time.monotonic()
        proc = children.start([*gotel_command(), "attach", "--pid", str(pid)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        assert proc.stderr is not None
        log = Lines(proc.stderr)
        attached = log.wait_for(re.compile(r"attached \d+/\d+ probes"), 60)
        t_attached = time.monotonic() - t0
        while sink.spans() == before and time.monotonic() - t0 < 30:
            time.sleep(0.005)
        t_span = time.monotonic() - t0
        children.end(proc)
        if attached is None:
            raise RuntimeError("gotel did not attach:\n  " + "\n  ".join(log.lines[-10:]))
        return t_attached, t_span
    finally:
        wrk.terminate()
        wrk.wait()


def run(args: argparse.Namespace, children: Children, _tmp: Path, _stats: bool) -> int:
    with step("building bench/apps/hello and bench/apps/otlpsink"):
        hello = build_app(BENCH / "apps" / "hello", name="bench-hello")
        sink_binary = build_sink()
        sink = OtlpSink(children, sink_binary)
    os.environ.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
                      OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    server = GoService(children, hello)
    url = server.url
    logging.basicConfig(level=logging.WARNING, format="gotel: %(message)s")

    with step("attach -> first span (gotel attach on hello under wrk -c2)"):
        t_attached, t_span = first_span(children, sink, server.pid, url)

    config = make_config(exporter="otlp")
    supervisor = Supervisor(config, all_probes())
    supervisor.attach(process_from_pid(server.pid))
    lp = server_probe(supervisor, server.pid)
    tee = TeeRing(lp.rings[0], args.records)
    lp.shared.rings = (tee, *lp.rings[1:])  # type: ignore[assignment]
    stop = threading.Event()
    loop = threading.Thread(target=supervisor.run, args=(stop,), kwargs={"exit_when_idle": False})
    loop.start()
    real = None
    with step("capture: real server events from hello under wrk -t2 -c16"):
        real = run_wrk(url, 2, 16, args.capture)
    time.sleep(0.3)
    supervisor.pipeline.flush(30)  # the capture's spans reach the receiver before counting
    templates, count = b"".join(tee.blocks), tee.count
    size = lp.decoder.size
    if not count:
        raise RuntimeError("no events captured")
    capacity = config.ring_buffer_bytes // record_stride(size)
    paced = PacedRing(tee.ring, templates, count, size, args.rate, capacity)
    before_made, before_sink = supervisor.sessions[server.pid].stats.spans, sink.spans()
    cpu0, rss0 = time.process_time(), rss_kib()
    peak, samples = rss0, []
    outage = (OUTAGE_AT_S, OUTAGE_AT_S + args.outage) if args.outage else None
    received_before_outage = 0
    sink_down = sink_back = False
    with step(f"replay: {count} recorded records at {args.rate:g}/s for {args.seconds:g} s"
              + (f", the receiver down from {outage[0]} s to {outage[1]:g} s" if outage else "")):
        lp.shared.rings = (paced, *lp.rings[1:])  # type: ignore[assignment]
        paced.start = time.monotonic()
        end = paced.start + args.seconds
        while (now := time.monotonic()) < end:
            time.sleep(min(1.0, end - now))
            r = rss_kib()
            peak = max(peak, r)
            samples.append(r)
            at = time.monotonic() - paced.start
            if outage and at >= outage[0] and not sink_down and not sink_back:
                received_before_outage = sink.spans() - before_sink
                children.end(sink.proc, signal.SIGKILL)
                sink_down = True
            elif outage and at >= outage[1] and sink_down:
                # A restarted collector at the same address: gotel must resume by itself.
                sink = OtlpSink(children, sink_binary, "-http", f"127.0.0.1:{sink.http_port}")
                sink_down, sink_back = False, True
                before_sink = -received_before_outage
        paced.stopped = True
        elapsed = time.monotonic() - paced.start
        backlog = paced.served + paced.lost - int(args.rate * elapsed)  # due, not yet drained
        time.sleep(0.5)  # the drain loop takes what is left; close() flushes the queue
        stop.set()
        loop.join()
        supervisor.close()
    cpu = time.process_time() - cpu0
    session_spans = supervisor.totals.spans - before_made
    delivered = sink.spans() - before_sink
    stats = sink.stats()
    print(f"gotel pipeline rate: {os.cpu_count()} CPUs, Linux {os.uname().release}; "
          "OTLP/HTTP to bench/apps/otlpsink")
    print(f"attach -> first span: {t_attached:.2f} s to 'attached', {t_span:.2f} s to the "
          "first span at the receiver (`gotel attach --pid`, target under load)")
    print(f"capture: {count} server records of {size} bytes from {real.requests} requests at "
          f"{real.rps:.0f} req/s (the real-traffic ceiling here, 2 uprobe hits per span)")
    print(f"replay: {paced.served + paced.lost} records due in {elapsed:.1f} s = "
          f"{(paced.served + paced.lost) / elapsed:.0f}/s; {paced.served} drained, "
          f"{paced.lost} lost as a full ring would lose them; {max(0, -backlog)} due in the "
          "last drain interval when it stopped")
    print(f"spans: {session_spans} made, {delivered} delivered to the receiver "
          f"({stats['bad_requests']} bad requests); gotel: {supervisor.report()}")
    print(f"agent CPU: {cpu:.1f} s = {100 * cpu / elapsed:.0f}% of one core = "
          f"{1e6 * cpu / max(1, session_spans):.2f} µs per span (all its threads)")
    if outage:
        print(f"receiver down from {outage[0]} s to {outage[1]:g} s of the replay (SIGKILL, then "
              "restarted on the same port); dropped spans are counted above")
    print(f"agent RSS: {rss0 / 1024:.0f} MB at start (with {len(templates) / 2**20:.0f} MB of "
          f"recorded records), peak {peak / 1024:.0f} MB, end {samples[-1] / 1024:.0f} MB; "
          f"per 10 s: {' '.join(f'{s / 1024:.0f}' for s in samples[9::10])}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rate", type=float, default=50_000, help="records/s (default 50000)")
    ap.add_argument("--seconds", type=float, default=60, help="replay length (default 60)")
    ap.add_argument("--capture", type=float, default=3, help="capture seconds (default 3)")
    ap.add_argument("--outage", type=float, default=0,
                    help=f"seconds the receiver is down, from {OUTAGE_AT_S} s into the replay "
                    "(default 0: never)")
    ap.add_argument("--records", type=int, default=20_000,
                    help="records to keep for the replay (default 20000)")
    args = ap.parse_args()
    if args.rate <= 0 or args.seconds < 1:
        ap.error("need --rate > 0 and --seconds >= 1")
    if args.outage and args.seconds < OUTAGE_AT_S + args.outage + 10:
        ap.error(f"--outage needs --seconds >= {OUTAGE_AT_S} + outage + 10 (to see export resume)")
    return bench_main("pipeline_rate", args, run)


if __name__ == "__main__":
    sys.exit(main())
