"""Soak and faults: gotel attached and detached again and again under saturation, targets
killed and restarted, gotel killed with SIGKILL, the collector down.

Two services: A (the demo server with -downstream B) answers GET /chain by calling B's
/chain, and B answers with the traceparent it received. While gotel is attached to A, the
socket injector inserts traceparent into A's outgoing requests; wrk checks every body that
comes back (exactly `traceparent=` and nothing, or a well-formed W3C traceparent), so a
request the injector corrupted shows up as a wrong body or a non-200 answer.

Checked each cycle: both targets alive, every response right, gotel's exit status, how long
its detach took (SIGTERM to exit), and that no uprobe is left in the targets' code (the
bytes at every probed address are the original ones again, read from /proc/PID/mem). With
one long-lived gotel (restarts): its file descriptors and BPF links return to where they
were after each detach.

    .venv/bin/python bench/soak.py                          # ~2 min
    .venv/bin/python bench/soak.py --minutes 10 --every 3 --restarts 50 --outage 60
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from gotel.goelf import open_binary  # noqa: E402
from gotel.instrumentation.registry import all_probes  # noqa: E402
from gotel.planning import plan_probes  # noqa: E402
from gotools import build_app  # noqa: E402

GOTEL = [sys.executable, "-m", "gotel.cli"]
STOP_TIMEOUT_S = 60.0  # a gotel still running after this is a failure (the >30 s exit)
TRACEPARENT_BODY = re.compile(rb"traceparent=(00-[0-9a-f]{32}-[0-9a-f]{16}-0[01])?\n")

# wrk checks each body in Lua; every thread's counts are summed in done().
WRK_CHECK = r"""
local threads = {}
local tp = "^traceparent=00%-" .. string.rep("%x", 32) .. "%-" .. string.rep("%x", 16)
  .. "%-0[01]\n$"
function setup(thread) table.insert(threads, thread) end
function init(args) ok, traced, bad, sample = 0, 0, 0, "" end
function response(status, headers, body)
  if status == 200 and body == "traceparent=\n" then ok = ok + 1
  elseif status == 200 and string.match(body, tp) then ok = ok + 1; traced = traced + 1
  else bad = bad + 1; if sample == "" then sample = status .. " " .. body end end
end
function done(summary, latency, requests)
  local o, t, b, s = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    o = o + thread:get("ok"); t = t + thread:get("traced"); b = b + thread:get("bad")
    if s == "" then s = thread:get("sample") end
  end
  io.write(string.format("CHECK ok=%d traced=%d bad=%d sample=%q\n", o, t, b, s))
end
"""


# --------------------------------------------------------------------------- processes


class Service:
    """The demo server on 127.0.0.1:PORT (0: any free port)."""

    def __init__(self, binary: Path, *flags: str, port: int = 0) -> None:
        self.binary = binary
        self.popen = subprocess.Popen(
            [str(binary), "-addr", f"127.0.0.1:{port}", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"{binary.name} said {line!r}")
        self.base = "http://" + line.removeprefix("listening on ")
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            self.popen.wait(timeout=10)


class GotelProcess:
    """gotel as a user runs it; its stderr kept line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            [*GOTEL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **(env or {})),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := regex.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._reader.is_alive()):
                    raise RuntimeError(f"gotel never said /{pattern}/:\n" + self.log)
                self._cond.wait(min(left, 0.2))

    @property
    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def stop(self) -> tuple[int, float]:
        """SIGTERM; (exit status, seconds to exit). A hang raises."""
        started = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self.popen.kill()
            self.popen.wait()
            raise RuntimeError(f"gotel took over {STOP_TIMEOUT_S:.0f} s to exit on SIGTERM:\n"
                               + self.log) from exc
        self._reader.join(5)
        return code, time.monotonic() - started

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()
        self._reader.join(5)

    def fds(self) -> dict[str, int]:
        """Its open file descriptors by kind (bpf-prog, bpf-map, bpf_link, perf_event...)."""
        kinds: dict[str, int] = {}
        for entry in os.scandir(f"/proc/{self.popen.pid}/fd"):
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            kind = target.removeprefix("anon_inode:").split(":")[0].strip("[]")
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds


class Wrk:
    """wrk in the background on URL, checking every body; result() once it ends."""

    def __init__(self, url: str, seconds: float, threads: int = 1, conns: int = 8) -> None:
        script = Path(tempfile.mkdtemp(prefix="gotel-soak-")) / "check.lua"
        script.write_text(WRK_CHECK)
        self.popen = subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s",
             "--timeout", "5s", "-s", str(script), url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

    def result(self) -> dict[str, object]:
        out, _ = self.popen.communicate(timeout=3600)
        m = re.search(r'CHECK ok=(\d+) traced=(\d+) bad=(\d+) sample="(.*)"', out)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not m or not rps:
            raise RuntimeError(f"wrk failed: {out}")
        errors = " ".join(line.strip() for line in out.splitlines() if "Socket errors" in line)
        return {"ok": int(m[1]), "traced": int(m[2]), "bad": int(m[3]), "sample": m[4],
                "rps": float(rps[1]), "socket_errors": errors}


# --------------------------------------------------------------------------- uprobe check


class ProbedCode:
    """The first byte at every address gotel probes in one process, as it was before any
    attach: a uprobe is an int3 (0xcc) written there, gone again once it is removed."""

    def __init__(self, pid: int, binary: Path) -> None:
        self.pid = pid
        addresses = []
        with open_binary(binary) as opened:
            for plan in plan_probes(opened, all_probes()):
                if not (plan.linked and plan.applies):
                    continue
                for hp in plan.hooks:
                    base = hp.function.address - hp.function.file_offset
                    if hp.hook.entry:
                        addresses.append(hp.function.address)
                    if hp.hook.returns:
                        addresses += [base + offset for offset in hp.return_offsets]
        self.original = self._read(addresses)

    def _read(self, addresses: list[int]) -> dict[int, int]:
        with open(f"/proc/{self.pid}/mem", "rb", buffering=0) as mem:
            found = {}
            for address in addresses:
                mem.seek(address)
                found[address] = mem.read(1)[0]
        return found

    def probed(self) -> int:
        """How many probed addresses hold a breakpoint that was not there before."""
        now = self._read(list(self.original))
        return sum(1 for a, byte in now.items() if byte != self.original[a])


# --------------------------------------------------------------------------- phases


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def fail(self, line: str) -> None:
        self.failures.append(line)
        self.say("FAIL: " + line)


def _spans(path: Path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_wrk(report: Report, what: str, result: dict[str, object]) -> None:
    report.say(f"{what}: wrk {result['ok']} right responses ({result['traced']} with a "
               f"traceparent), {result['bad']} wrong, {result['rps']:.0f} req/s "
               f"{result['socket_errors']}".rstrip())
    if result["bad"]:
        report.fail(f"{what}: {result['bad']} wrong responses, first: {result['sample']}")
    if not result["ok"]:
        report.fail(f"{what}: no right response at all")


def _pair(binary: Path) -> tuple[Service, Service]:
    b = Service(binary)
    a = Service(binary, "-downstream", b.base)
    return a, b


def attach_detach_cycles(report: Report, binary: Path, seconds: float, every: float,
                         tmp: Path) -> None:
    """gotel attached to A and B, then stopped, every `every` s, under wrk for `seconds`."""
    a, b = _pair(binary)
    try:
        code = {s.pid: ProbedCode(s.pid, binary) for s in (a, b)}
        wrk = Wrk(f"{a.base}/chain", seconds)
        detach_s, spans, cycles, injected = [], 0, 0, 0
        end = time.monotonic() + seconds - every  # the last cycle ends before wrk does
        while time.monotonic() < end:
            out = tmp / f"cycle{cycles}.jsonl"
            gotel = GotelProcess("attach", "--pid", str(a.pid), "--pid", str(b.pid),
                                 "--exporter", "jsonl", "--output", str(out))
            for s in (a, b):
                gotel.wait_for(rf"pid {s.pid} .*attached \d+/\d+ probes")
            in_place = sum(c.probed() for c in code.values())
            time.sleep(every / 2)
            rc, took = gotel.stop()
            detach_s.append(took)
            cycles += 1
            if rc != 0:
                report.fail(f"cycle {cycles}: gotel exited {rc}:\n{gotel.log}")
            if not in_place:
                report.fail(f"cycle {cycles}: no breakpoint found while attached")
            left = {pid: c.probed() for pid, c in code.items() if c.probed()}
            if left:
                report.fail(f"cycle {cycles}: uprobes left after detach: {left}")
            for s in (a, b):
                if not s.alive():
                    report.fail(f"cycle {cycles}: pid {s.pid} died")
            made = _spans(out)
            spans += len(made)
            injected += sum(1 for line in gotel.lines if "traceparent insertion: " in line
                            and "injected" in line)
            time.sleep(every / 2)
        result = wrk.result()
        _check_wrk(report, f"attach/detach x{cycles}", result)
        if not result["traced"]:
            report.fail("no request ever got a traceparent from the injector")
        report.say(
            f"attach/detach: {cycles} cycles every {every:.1f} s over {seconds:.0f} s, "
            f"{spans} spans exported, detach (SIGTERM to exit) median "
            f"{statistics.median(detach_s):.2f} s, max {max(detach_s):.2f} s; targets alive: "
            f"{a.alive() and b.alive()}; uprobes left: 0 checked at "
            f"{sum(len(c.original) for c in code.values())} addresses x {cycles}"
        )
        if not spans:
            report.fail("attach/detach: no span exported")
    finally:
        a.stop()
        b.stop()


def session_cycles(report: Report, binary: Path, seconds: float, every: float) -> None:
    """Attach and detach from within one agent process (the Supervisor API), every `every`
    s under wrk: many more cycles than process starts allow, and this process's own file
    descriptors (BPF programs, maps, links, perf events) counted after each detach."""
    from gotel.config import make_config
    from gotel.supervisor import Supervisor
    from gotel.target import process_from_pid

    a, b = _pair(binary)
    supervisor = Supervisor(make_config(exporter="none"), all_probes())
    try:
        code = {s.pid: ProbedCode(s.pid, binary) for s in (a, b)}
        wrk = Wrk(f"{a.base}/chain", seconds)
        # The objects (and the cgroup's socket injector) stay loaded after the first detach,
        # for the next attach: from then on every detach must leave exactly that, no uprobe
        # may stay in the targets' code, and every fd must go when the agent closes.
        before = _own_fds()
        baseline: dict[str, int] | None = None
        cycles, leaks, detach_s = 0, 0, []
        # One cycle starts every `every` s on a fixed schedule (attach, drain for half of
        # it, detach, rest), so that the count is the duration's, whatever they take.
        start = time.monotonic()
        end = start + seconds
        while start + every <= end + 0.5:
            for s in (a, b):
                supervisor.attach(process_from_pid(s.pid))
            deadline = start + every / 2
            while time.monotonic() < deadline:
                supervisor.pool.poll()
                time.sleep(0.02)
            started = time.monotonic()
            supervisor.close_sessions()
            detach_s.append(time.monotonic() - started)
            cycles += 1
            now = _own_fds()
            if baseline is None:
                baseline = now
            if now != baseline or any(c.probed() for c in code.values()):
                leaks += 1
                report.fail(f"session cycle {cycles}: fds {baseline} -> {now}, uprobes left "
                            f"{[c.probed() for c in code.values()]}")
            start += every
            time.sleep(max(0.0, start - time.monotonic()))
        result = wrk.result()
        _check_wrk(report, f"session attach/detach x{cycles}", result)
        report.say(
            f"session attach/detach: {cycles} cycles every {every:.1f} s, detach median "
            f"{statistics.median(detach_s):.2f} s, max {max(detach_s):.2f} s; leaks after "
            f"detach (own fds by kind, int3 at {sum(len(c.original) for c in code.values())} "
            f"probed addresses) {leaks}; targets alive: {a.alive() and b.alive()}"
        )
        if not (a.alive() and b.alive()):
            report.fail("session cycles: a target died")
    finally:
        supervisor.close()
        a.stop()
        b.stop()
    closed = _own_fds()
    if closed != before:
        report.fail(f"session cycles: fds after the agent closed {closed}, before {before}")


def _own_fds() -> dict[str, int]:
    kinds: dict[str, int] = {}
    for entry in os.scandir("/proc/self/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith("anon_inode:"):
            kind = target.removeprefix("anon_inode:").strip("[]")
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def restarts(report: Report, binary: Path, count: int, tmp: Path) -> None:
    """One gotel watching the executable; the target killed (SIGKILL) and started again."""
    port = _closed_port()
    out = tmp / "restarts.jsonl"
    gotel = GotelProcess("attach", "--exe", str(binary), "--exporter", "jsonl",
                         "--output", str(out))
    latencies, pids, fds_after = [], [], []
    try:
        gotel.wait_for("catching processes at exec|exec events unavailable")
        for n in range(count):
            server = Service(binary, port=port)
            pids.append(server.pid)
            m = gotel.wait_for(rf"pid {server.pid}: probes attached ([\d.]+) ms after its exec",
                               timeout=30)
            latencies.append(float(m.group(1)))
            gotel.wait_for(rf"pid {server.pid} .*attached \d+/\d+ probes")  # extensions too
            _get(f"{server.base}/hello/restart{n}")
            server.stop(signal.SIGKILL)
            gotel.wait_for(rf"pid {server.pid}: detached in")
            time.sleep(0.3)  # the spare for the next start is loaded meanwhile
            fds_after.append(gotel.fds())
        time.sleep(1.5)
        rc, took = gotel.stop()
    except BaseException:
        gotel.kill()
        raise
    if rc != 0:
        report.fail(f"restarts: gotel exited {rc}")
    traced = {s["resource"]["process.pid"] for s in _spans(out)}
    missing = [pid for pid in pids if pid not in traced]
    if missing:
        report.fail(f"restarts: no span from {len(missing)} of {count} starts")
    slow = [ms for ms in latencies if ms >= 1000]
    if slow:
        report.fail(f"restarts: re-attached later than 1 s after exec {len(slow)} times")
    first, last = fds_after[0], fds_after[-1]
    grown = {k: last.get(k, 0) - first.get(k, 0) for k in set(first) | set(last)
             if last.get(k, 0) > first.get(k, 0)}
    if grown:
        report.fail(f"restarts: gotel's fds grew from {first} to {last}")
    ordered = sorted(latencies)
    report.say(
        f"restarts: {count} kills and starts, re-attached {len(latencies)}/{count} "
        f"(exec->probes median {statistics.median(ordered):.1f} ms, max {ordered[-1]:.1f} ms), "
        f"traced {count - len(missing)}/{count}; gotel fds after each detach steady "
        f"({sum(last.values())}: {', '.join(f'{k} {v}' for k, v in sorted(last.items()))}); "
        f"exit {took:.2f} s"
    )


def _get(url: str) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()


def gotel_killed(report: Report, binary: Path, tmp: Path) -> None:
    """gotel SIGKILLed while attached under load: the targets keep serving, the kernel
    removes its probes, and the next gotel attaches cleanly."""
    a, b = _pair(binary)
    try:
        code = {s.pid: ProbedCode(s.pid, binary) for s in (a, b)}
        wrk = Wrk(f"{a.base}/chain", 8)
        first = GotelProcess("attach", "--pid", str(a.pid), "--pid", str(b.pid),
                             "--exporter", "none")
        for s in (a, b):
            first.wait_for(rf"pid {s.pid} .*attached \d+/\d+ probes")
        time.sleep(1)
        first.kill()
        time.sleep(0.5)
        left = sum(c.probed() for c in code.values())
        out = tmp / "after-kill.jsonl"
        second = GotelProcess("attach", "--pid", str(a.pid), "--pid", str(b.pid),
                              "--exporter", "jsonl", "--output", str(out))
        for s in (a, b):
            second.wait_for(rf"pid {s.pid} .*attached \d+/\d+ probes")
        time.sleep(2)
        rc, _ = second.stop()
        result = wrk.result()
        _check_wrk(report, "gotel SIGKILL", result)
        spans = len(_spans(out))
        alive = a.alive() and b.alive()
        report.say(f"gotel SIGKILL: targets alive {alive}, uprobes left by the killed gotel "
                   f"{left}, next gotel exit {rc} with {spans} spans")
        if left or not alive or rc != 0 or not spans:
            report.fail("gotel SIGKILL: targets harmed, probes left or the next gotel failed")
    finally:
        a.stop()
        b.stop()


def collector_down(report: Report, binary: Path, seconds: float) -> None:
    """OTLP to a port nobody listens on, under load: gotel's RSS stays bounded and it
    counts what it drops."""
    a, b = _pair(binary)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    try:
        gotel = GotelProcess("attach", "--pid", str(a.pid), "--pid", str(b.pid),
                             "--exporter", "otlp", env=env)
        for s in (a, b):
            gotel.wait_for(rf"pid {s.pid} .*attached \d+/\d+ probes")
        wrk = Wrk(f"{a.base}/chain", seconds)
        rss = []
        while wrk.popen.poll() is None:
            with open(f"/proc/{gotel.popen.pid}/status") as status:
                rss += [int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS")]
            time.sleep(0.5)
        result = wrk.result()
        rc, took = gotel.stop()
        final = next((line for line in reversed(gotel.lines) if "spans: " in line), "")
        _check_wrk(report, "collector down", result)
        report.say(f"collector down {seconds:.0f} s: gotel RSS {rss[0]} -> max {max(rss)} MiB; "
                   f"{final.removeprefix('gotel: ')}; exit {rc} in {took:.1f} s")
        if rc != 0 or "dropped" not in final:
            report.fail(f"collector down: loss not reported (exit {rc}): {final}")
        if max(rss) > 512:
            report.fail(f"collector down: RSS grew to {max(rss)} MiB")
    finally:
        a.stop()
        b.stop()


def soak(*, seconds: float, every: float, restart_count: int, outage_s: float,
         process_seconds: float) -> Report:
    binary = build_app("httpserver", name="httpserver-soak")
    report = Report()
    with tempfile.TemporaryDirectory(prefix="gotel-soak-") as tmp:
        session_cycles(report, binary, seconds, every)
        attach_detach_cycles(report, binary, process_seconds, every, Path(tmp))
        restarts(report, binary, restart_count, Path(tmp))
        gotel_killed(report, binary, Path(tmp))
        collector_down(report, binary, outage_s)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="attach/detach under load")
    parser.add_argument("--every", type=float, default=3.0, help="seconds per attach/detach")
    parser.add_argument("--process-minutes", type=float, default=0.5,
                        help="attach/detach by starting and stopping gotel itself")
    parser.add_argument("--restarts", type=int, default=10, help="target kills and starts")
    parser.add_argument("--outage", type=float, default=15.0, help="seconds without collector")
    args = parser.parse_args()
    report = soak(seconds=args.minutes * 60, every=args.every, restart_count=args.restarts,
                  outage_s=args.outage, process_seconds=args.process_minutes * 60)
    print("soak: " + ("PASS" if not report.failures else f"{len(report.failures)} failures"))
    return 0 if not report.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
