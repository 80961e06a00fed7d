"""Exec-to-attach latency of `gotel attach --exe`: how long after a program's exec its
probes are in, and whether its first request is traced.

Two kinds of program are started again and again under one gotel:
  - a short-lived HTTP client (tests/apps/shortclient: 10 GETs 30 ms apart, ~0.3 s);
  - an HTTP server, sent its first request the moment it prints "listening on".
gotel logs "pid N: probes attached X ms after its exec" (CLOCK_BOOTTIME of the exec, from
the sched_process_exec tracepoint, to the last uprobe link made); the spans tell which
requests were traced.

    .venv/bin/python bench/exec_attach.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from benchlib import (  # noqa: E402
    Children,
    GoService,
    Lines,
    background_load,
    gotel_command,
    load_line,
)

from gotools import build_app  # noqa: E402

LATENCY_RE = re.compile(r"pid (\d+): probes attached ([\d.]+) ms after its exec")
REQUESTS = 10


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()


def _wait_for(lines: Lines, pid: int, timeout: float = 10.0) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines.lines):
            if (m := LATENCY_RE.search(line)) and int(m.group(1)) == pid:
                return float(m.group(2))
        time.sleep(0.02)
    return None


def _spans(path: Path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line]


def _summary(name: str, latencies: list[float], first: int, traced: int, total: int,
             runs: int) -> str:
    if not latencies:
        return f"{name}: never attached in {runs} runs"
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (
        f"{name}: caught {len(latencies)}/{runs}; exec->attached median "
        f"{statistics.median(ordered):.1f} ms, p90 {p90:.1f} ms, max {ordered[-1]:.1f} ms; "
        f"first request traced {first}/{runs}; requests traced {traced}/{total} "
        f"({100 * traced / max(total, 1):.0f}%)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="starts of each program")
    args = parser.parse_args()
    client = build_app("shortclient")
    server_bin = build_app("httpserver", name="httpserver-execbench")
    backend_bin = build_app("httpserver")
    out = Path(tempfile.mkdtemp(prefix="gotel-execbench-")) / "spans.jsonl"
    before = background_load()
    children = Children()
    try:
        backend = GoService(children, backend_bin)
        gotel = children.start(
            [*gotel_command(), "attach", "--exe", str(client), "--exe", str(server_bin),
             "--exporter", "jsonl", "--output", str(out)],
            stderr=subprocess.PIPE,
        )
        lines = Lines(gotel.stderr)
        started = re.compile("catching processes at exec|exec events unavailable")
        if lines.wait_for(started, 60) is None:
            raise SystemExit("bench: gotel did not start:\n" + "\n".join(lines.lines))
        time.sleep(1.0)  # objects for both binaries are loaded ahead meanwhile

        client_lat: list[float] = []
        client_pids: list[int] = []
        for run in range(args.runs):
            proc = children.start([str(client), "-url", f"{backend.base}/hello/c{run}-",
                                   "-n", str(REQUESTS), "-every", "30ms"],
                                  stdout=subprocess.DEVNULL)
            proc.wait(timeout=30)
            client_pids.append(proc.pid)
            if (ms := _wait_for(lines, proc.pid)) is not None:
                client_lat.append(ms)
            time.sleep(0.3)

        server_lat: list[float] = []
        server_pids: list[int] = []
        for run in range(args.runs):
            server = GoService(children, server_bin)
            _get(f"{server.base}/hello/first{run}")  # the moment it says it listens
            for i in range(REQUESTS - 1):
                _get(f"{server.base}/hello/s{run}-{i}")
                time.sleep(0.03)
            server_pids.append(server.pid)
            if (ms := _wait_for(lines, server.pid)) is not None:
                server_lat.append(ms)
            children.end(server.proc)
            time.sleep(0.3)
        time.sleep(1.5)  # the last spans reach the file
        children.end(gotel)
    finally:
        children.end_all()
    after = background_load()
    spans = _spans(out)
    client_paths = [s["attributes"].get("url.full", "") for s in spans if s["kind"] == "CLIENT"
                    and s["resource"]["process.pid"] in client_pids]
    server_paths = [s["attributes"].get("url.path", "") for s in spans if s["kind"] == "SERVER"
                    and s["resource"]["process.pid"] in server_pids]
    client_first = sum(1 for run in range(args.runs)
                       if any(p.endswith(f"/hello/c{run}-0") for p in client_paths))
    server_first = sum(1 for run in range(args.runs) if f"/hello/first{run}" in server_paths)
    print(f"exec-to-attach, {args.runs} starts of each program ({load_line(before, after)})")
    print(_summary("short-lived client (10 GETs, 30 ms apart)", client_lat, client_first,
                   len(client_paths), REQUESTS * args.runs, args.runs))
    print(_summary("server (first request as soon as it listens)", server_lat, server_first,
                   len(server_paths), REQUESTS * args.runs, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
