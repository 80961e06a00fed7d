"""How gotel finds its targets: `run`, `attach --exe`, and Go releases with and without routes."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from conftest import GoServer, Gotel, get, read_jsonl
from gotools import build_app, go_binary

pytestmark = pytest.mark.usefixtures("require_root")






def test_run_instruments_from_the_first_request(tmp_path, gotels):
    binary = build_app("httpserver")
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("run", "--exporter", "jsonl", "--output", str(out), "--", str(binary),
                  "-addr", "127.0.0.1:0")
    gotels.append(gotel)
    assert gotel.popen.stdout is not None
    line = gotel.popen.stdout.readline().strip()  # the program's own stdout passes through
    assert line.startswith("listening on "), gotel.log
    url = "http://" + line.removeprefix("listening on ")
    # The very first request is traced: probes were in place before exec.
    assert get(url + "/hello/first") == 200
    spans = read_jsonl(out, 1)
    assert [s["name"] for s in spans] == ["GET /hello/{id}"], gotel.log
    assert spans[0]["attributes"]["url.path"] == "/hello/first"
    assert spans[0]["resource"]["service.name"] == binary.name
    pid = int(re.search(r"pid (\d+)", gotel.wait_for(r"attached").string).group(1))
    assert spans[0]["resource"]["process.pid"] == pid
    # The program's end ends gotel, with the program's exit status (as a shell reports it).
    os.kill(pid, signal.SIGTERM)
    assert gotel.popen.wait(timeout=15) == 128 + signal.SIGTERM, gotel.log


def test_attach_exe_waits_for_processes_and_follows_new_ones(tmp_path, servers, gotels):
    binary = build_app("httpserver")
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", str(binary), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    first = GoServer(binary)
    servers.append(first)
    gotel.wait_for(rf"pid {first.pid} .*attached")
    second = GoServer(binary)
    servers.append(second)
    gotel.wait_for(rf"pid {second.pid} .*attached")
    assert get(first.url + "/hello/one") == 200
    assert get(second.url + "/hello/two") == 200
    spans = read_jsonl(out, 2)
    by_pid = {s["resource"]["process.pid"]: s["attributes"]["url.path"] for s in spans}
    assert by_pid == {first.pid: "/hello/one", second.pid: "/hello/two"}
    first.stop()
    gotel.wait_for(rf"pid {first.pid} exited")
    assert gotel.stop() == 0


@pytest.mark.parametrize(
    ("toolchain", "route"),
    [("go1.21.13", None), ("go1.22.12", "/hello/{id}"), (None, "/hello/{id}")],
)
def test_go_releases(toolchain, route, tmp_path, servers, gotels):
    binary = build_app("httpserver", toolchain=toolchain)
    server = GoServer(binary)
    servers.append(server)
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--pid", str(server.pid), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for(rf"pid {server.pid} .*attached")
    assert get(server.url + "/hello/v") == 200
    spans = read_jsonl(out, 1)
    assert len(spans) == 1, gotel.log
    attrs = spans[0]["attributes"]
    assert attrs.get("http.route") == route
    assert attrs["url.path"] == "/hello/v"
    assert attrs["http.response.status_code"] == 200
    assert spans[0]["name"] == ("GET /hello/{id}" if route else "GET")
    go_version = subprocess.run(
        [go_binary(), "version", str(binary)], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert spans[0]["resource"]["process.runtime.version"] in (go_version, go_version[2:])
    assert gotel.stop() == 0


def test_attach_exe_in_another_mount_namespace(tmp_path, gotels):
    """A sidecar names the binary by its path in the application's container."""
    binary = build_app("httpserver")
    hidden = f"/mnt/gotel-test-{os.getpid()}/app"  # exists only inside the new namespace
    assert not os.path.exists(hidden)
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", hidden, "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    script = (
        f"mkdir -p {os.path.dirname(hidden)} && mount -t tmpfs none {os.path.dirname(hidden)}"
        f" && cp {binary} {hidden} && exec {hidden} -addr 127.0.0.1:0"
    )
    app = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           stdout=subprocess.PIPE, text=True)
    try:
        line = app.stdout.readline().strip()
        assert line.startswith("listening on "), line
        gotel.wait_for(rf"pid {app.pid} .*attached")
        assert get("http://" + line.removeprefix("listening on ") + "/hello/ns") == 200
        spans = read_jsonl(out, 1)
        assert [s["attributes"]["url.path"] for s in spans] == ["/hello/ns"]
        assert spans[0]["resource"]["process.executable.path"] == hidden
    finally:
        app.terminate()
        app.wait()
    assert gotel.stop() == 0
