"""One set of BPF objects for every process of a layout: each process's spans stay its own,
a detached process leaves the others traced, and gotel in a pid namespace of its own (a
sidecar's) still tells its processes apart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import GOTEL, REPO, GoServer, Gotel, free_port, get, spans_until
from gotools import build_app

pytestmark = pytest.mark.usefixtures("require_root")

REQUESTS = 60  # per front service


def bpf_held(pid: int) -> tuple[int, int]:
    """(BPF programs, BPF maps) a process holds open (unique kernel ids, from fdinfo)."""
    progs, maps = set(), set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if m := re.search(r"^prog_id:\s+(\d+)", text, re.M):
            if "link_id" not in text:
                progs.add(int(m.group(1)))
        elif m := re.search(r"^map_id:\s+(\d+)", text, re.M):
            maps.add(int(m.group(1)))
    return len(progs), len(maps)


def attach(out: Path, *pids: int) -> Gotel:
    args = ["attach", "--exporter", "jsonl", "--output", str(out)]
    for pid in pids:
        args += ["--pid", str(pid)]
    gotel = Gotel(*args)
    for pid in pids:
        gotel.wait_for(rf"pid {pid} .*attached \d+/\d+ probes.*traceparent out: on")
    return gotel


def test_processes_share_objects_and_keep_their_own_spans(tmp_path, servers, gotels):
    binary = build_app("httpserver")
    b, d = GoServer(binary), GoServer(binary)
    a, c = GoServer(binary, "-downstream", b.url), GoServer(binary, "-downstream", d.url)
    servers.extend([a, b, c, d])

    # What one process costs, then four.
    alone = attach(tmp_path / "alone.jsonl", a.pid)
    gotels.append(alone)
    one = bpf_held(alone.popen.pid)
    assert alone.stop() == 0, alone.log
    out = tmp_path / "spans.jsonl"
    gotel = attach(out, a.pid, b.pid, c.pid, d.pid)
    gotels.append(gotel)
    four = bpf_held(gotel.popen.pid)
    # One set of uprobe programs and maps serves all four; the only growth allowed is the
    # socket injector's, one per cgroup (all four share the test's).
    assert four == one, (one, four)
    assert re.search(rf"pid {d.pid} .*of its probe objects shared with other processes",
                     gotel.log), gotel.log

    # Both front services at once, from several threads: every span must land in the
    # process that made it, every trace in its own chain.
    def hit(front: GoServer, tag: str) -> None:
        for i in range(REQUESTS):
            assert get(f"{front.url}/chain?i={tag}{i}") == 200

    threads = [threading.Thread(target=hit, args=(s, t)) for s, t in ((a, "a"), (c, "c"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = spans_until(out, lambda s: len(s) >= 6 * REQUESTS, timeout=30)
    by_pid = Counter(s["resource"]["process.pid"] for s in spans)
    assert by_pid == {a.pid: 2 * REQUESTS, b.pid: REQUESTS, c.pid: 2 * REQUESTS,
                      d.pid: REQUESTS}, by_pid
    traces: dict[str, list[dict]] = {}
    for s in spans:
        traces.setdefault(s["trace_id"], []).append(s)
    assert len(traces) == 2 * REQUESTS
    for chain in traces.values():
        pids = sorted(s["resource"]["process.pid"] for s in chain)
        assert pids in (sorted([a.pid, a.pid, b.pid]), sorted([c.pid, c.pid, d.pid])), chain
        ids = {s["span_id"] for s in chain}
        [front] = [s for s in chain if s.get("parent_span_id") not in ids]
        assert front["kind"] == "SERVER", chain
        assert front["attributes"]["url.query"].startswith("i=a" if a.pid in pids else "i=c")

    # A process that goes leaves the others traced by the same objects.
    a.stop()
    gotel.wait_for(rf"pid {a.pid}: detached")
    before = len(spans)
    for i in range(10):
        assert get(f"{c.url}/chain?i=after{i}") == 200
    spans = spans_until(out, lambda s: len(s) >= before + 30, timeout=20)
    late = spans[before:]
    assert Counter(s["resource"]["process.pid"] for s in late) == {c.pid: 20, d.pid: 10}
    assert gotel.stop() == 0, gotel.log
    assert "events of pid" not in gotel.log, gotel.log  # none went unrouted


def test_in_its_own_pid_namespace_gotel_routes_by_the_pids_it_sees(tmp_path):
    """As in a sidecar: gotel and its targets in a pid namespace that is not the initial
    one, where the kernel's tgids are not the pids gotel knows."""
    binary = build_app("httpserver")
    out = tmp_path / "spans.jsonl"
    script = tmp_path / "pod.sh"
    # Two targets (one calls two from /chain), then gotel watching their binary; each line
    # says what it started.
    ports = {name: free_port() for name in ("one", "two")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    script.write_text(
        "set -e\n"
        f"{binary} -addr 127.0.0.1:{ports['one']} -downstream {urls['two']} > /dev/null &\n"
        "echo one $!\n"
        f"{binary} -addr 127.0.0.1:{ports['two']} > /dev/null &\n"
        "echo two $!\n"
        f"exec {' '.join(GOTEL)} attach --exe {binary} --exporter jsonl --output {out}\n"
    )
    pod = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "sh", str(script)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert pod.stdout is not None and pod.stderr is not None
        inner = dict(pod.stdout.readline().split() for _ in range(2))
        assert int(inner["one"]) < 10, inner  # pids of the new namespace
        log: list[str] = []
        deadline = time.monotonic() + 60
        while len(attached(log)) < 2 and time.monotonic() < deadline:
            log.append(pod.stderr.readline())
        assert len(attached(log)) == 2, "".join(log)
        # The socket injector tells its targets by these pids too.
        assert all("traceparent out: on" in line for line in attached(log)), "".join(log)
        for i in range(20):
            for name, url in urls.items():
                assert get(f"{url}/hello/{name}{i}") == 200
        spans = spans_until(out, lambda s: len(s) >= 40, timeout=20)
        paths = {(s["resource"]["process.pid"], s["attributes"]["url.path"][7:10])
                 for s in spans}
        assert paths == {(int(inner["one"]), "one"), (int(inner["two"]), "two")}, paths
        # A call from one to two is one trace: the traceparent went out at the socket layer.
        assert get(f"{urls['one']}/chain") == 200
        spans = spans_until(out, lambda s: len(s) >= 43, timeout=20)[40:]
        assert len({s["trace_id"] for s in spans}) == 1, spans
        client = next(s for s in spans if s["kind"] == "CLIENT")
        server_two = next(s for s in spans if s["resource"]["process.pid"] == int(inner["two"]))
        assert server_two["parent_span_id"] == client["span_id"], spans
    finally:
        # gotel is the namespace's init once the shell execs it (unshare ignores SIGTERM
        # while it waits): its end ends the namespace, the targets with it.
        for pid in running_with(str(out)):
            os.kill(pid, signal.SIGTERM)
        try:
            pod.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pod.kill()
            for pid in running_with(str(out)):
                os.kill(pid, signal.SIGKILL)
            pod.wait()
        assert pod.returncode == 0, pod.stderr.read() if pod.stderr else ""


def running_with(argument: str) -> list[int]:
    """Processes whose command line has `argument`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if argument.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def attached(log: list[str]) -> list[str]:
    return [line for line in log if re.search(r"attached \d+/\d+ probes", line)]
