"""Processes caught at exec: short-lived programs, restarts, globs, a port, and /proc
polling when the exec tracepoint cannot be used."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import threading
from collections import Counter

import pytest

from conftest import GoServer, Gotel, free_port, get, read_jsonl
from gotools import build_app

pytestmark = pytest.mark.usefixtures("require_root")

REQUESTS = 20  # each short client run: 20 GETs 40 ms apart, ~0.8 s in all


def test_short_lived_clients_are_caught_at_exec_and_their_spans_exported(
    tmp_path, servers, gotels
):
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    client = build_app("shortclient")
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", str(client), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("catching processes at exec")
    pids = []
    for run in range(3):
        popen = subprocess.Popen(
            [str(client), "-url", f"{server.url}/hello/run{run}-", "-n", str(REQUESTS),
             "-every", "40ms"],
            stdout=subprocess.DEVNULL,
        )
        assert popen.wait(timeout=30) == 0
        pids.append(popen.pid)
        gotel.wait_for(rf"pid {popen.pid}: detached")  # gone, and cleaned up
    for pid in pids:
        gotel.wait_for(rf"pid {pid}: probes attached [\d.]+ ms after its exec")
    spans = read_jsonl(out, 3 * (REQUESTS - 1))
    client_spans = [s for s in spans if s["kind"] == "CLIENT"]
    by_pid = Counter(s["resource"]["process.pid"] for s in client_spans)
    # Every run is traced, all but its first requests at least (those can come before the
    # probes are in: a Go program sends within ~3 ms of exec).
    assert set(by_pid) == set(pids), (by_pid, gotel.log)
    assert all(count >= REQUESTS // 2 for count in by_pid.values()), (by_pid, gotel.log)
    for s in client_spans:
        run = pids.index(s["resource"]["process.pid"])
        assert s["attributes"]["url.full"].startswith(f"{server.url}/hello/run{run}-"), s
    assert gotel.stop() == 0


def test_a_restarting_server_matched_by_glob_is_reattached_each_time(tmp_path, servers, gotels):
    binary = build_app("httpserver")
    out = tmp_path / "spans.jsonl"
    pattern = str(binary.parent / "demoapp-*")
    gotel = Gotel("attach", "--exe", pattern, "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("catching processes at exec")
    pids = []
    for round_ in range(4):
        server = GoServer(binary)
        servers.append(server)
        gotel.wait_for(rf"pid {server.pid} .*attached \d+/\d+ probes")
        assert get(f"{server.url}/hello/r{round_}") == 200
        pids.append(server.pid)
        server.popen.send_signal(signal.SIGKILL)
        server.popen.wait()
        gotel.wait_for(rf"pid {server.pid} exited; detaching")
    spans = read_jsonl(out, 4)
    assert {s["resource"]["process.pid"]: s["attributes"]["url.path"] for s in spans} == {
        pid: f"/hello/r{i}" for i, pid in enumerate(pids)
    }, gotel.log
    assert gotel.stop() == 0


def test_port_selector_follows_whatever_listens_on_the_port(tmp_path, servers, gotels):
    port = free_port()
    binary = build_app("httpserver")
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--port", str(port), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("catching processes at exec")
    other = GoServer(binary)  # on another port: not selected
    servers.append(other)
    pids = []
    for round_ in range(2):
        server = GoServer(binary, "-addr", f"127.0.0.1:{port}")
        servers.append(server)
        gotel.wait_for(rf"pid {server.pid} .*attached \d+/\d+ probes")
        assert get(f"{server.url}/hello/p{round_}") == 200
        assert get(f"{other.url}/hello/other") == 200
        pids.append(server.pid)
        server.stop()
        gotel.wait_for(rf"pid {server.pid} exited; detaching")
    spans = read_jsonl(out, 2)
    assert sorted((s["resource"]["process.pid"], s["attributes"]["url.path"]) for s in spans) == [
        (pid, f"/hello/p{i}") for i, pid in enumerate(pids)
    ], gotel.log
    assert f"pid {other.pid}" not in gotel.log
    assert gotel.stop() == 0


def test_without_exec_events_it_says_so_once_and_polls(monkeypatch, caplog, servers):
    """Where the tracepoint cannot be used (an old kernel, no BTF), /proc is polled."""
    from gotel import supervisor as supervisor_module
    from gotel.config import make_config
    from gotel.errors import BpfLoadError
    from gotel.instrumentation.registry import all_probes
    from gotel.target import ExecutableSelector

    def refuse() -> None:
        raise BpfLoadError("bpf object exec: load failed: Invalid argument")

    monkeypatch.setattr(supervisor_module, "ExecEvents", refuse)
    binary = build_app("httpserver")
    supervisor = supervisor_module.Supervisor(make_config(exporter="none"), all_probes())
    stop = threading.Event()
    loop = threading.Thread(target=supervisor.run, args=(stop,), kwargs={"exit_when_idle": False})
    try:
        with caplog.at_level(logging.INFO, logger="gotel"):
            supervisor.watch(ExecutableSelector(binary))
            loop.start()
            server = GoServer(binary)
            servers.append(server)
            deadline = 200  # x 50 ms
            while server.pid not in supervisor.sessions and deadline:
                stop.wait(0.05)
                deadline -= 1
            assert server.pid in supervisor.sessions, caplog.text
    finally:
        stop.set()
        if loop.is_alive():
            loop.join()
        supervisor.close()
    said = [r.getMessage() for r in caplog.records if "exec events unavailable" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert re.search(r"Invalid argument\); looking for processes every \d+ ms", said[0]), said
