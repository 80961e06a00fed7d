"""A real program no one here wrote, routed by gorilla/mux: fake-gcs-server v1.56.1 (a Google
Cloud Storage emulator), built from the module proxy (tests/apps/fakegcs pins it as a tool).
Its JSON API sits on sub-routers under /storage/v1; gotel names its server spans by the
matched route's full template, stripped (offsets from the database) and not."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import Gotel, free_port, read_jsonl
from gotel.goelf import open_binary
from gotools import APPS, build_app

pytestmark = pytest.mark.usefixtures("require_root")

PROGRAM = "github.com/fsouza/fake-gcs-server"
MUX = "github.com/gorilla/mux"


def call(method: str, url: str, body: bytes | None = None, kind: str = "application/json"
         ) -> int:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": kind} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class FakeGcs:
    def __init__(self, binary: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-backend", "memory"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            self._wait_started(time.monotonic() + 30)
        except BaseException:
            self.proc.kill()  # never left running by a failed start
            self.proc.wait()
            raise

    def _wait_started(self, deadline: float) -> None:
        while True:
            try:
                if call("GET", self.url + "/_internal/healthcheck") == 200:
                    return
            except urllib.error.URLError:  # not listening yet
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def server_spans(out: Path, last_path: str, timeout: float = 20) -> list[dict]:
    """The SERVER spans written, once the one of the last request is among them (the
    start-up healthchecks may or may not have been traced before them)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in read_jsonl(out, 0, 0.2) if s["kind"] == "SERVER"]
        if any(s["attributes"]["url.path"] == last_path for s in spans):
            return spans
        assert time.monotonic() < deadline, spans
        time.sleep(0.2)


@pytest.mark.parametrize("stripped", [False, True])
def test_fake_gcs_server_spans_are_named_by_their_mux_route(stripped, tmp_path, gotels):
    binary = build_app(APPS / "fakegcs", package=PROGRAM, stripped=stripped)
    with open_binary(binary) as b:
        assert b.main is not None and b.main.path == PROGRAM, b.main
        assert b.modules[MUX] == "v1.8.1" and b.has_dwarf != stripped
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", str(binary), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    server = FakeGcs(binary)
    try:
        line = gotel.wait_for(rf"pid {server.proc.pid} .*attached.*").group(0)
        assert "gorilla/mux" not in line.partition("skipped")[2], line
        base = server.url
        requests = [
            ("POST", "/storage/v1/b", json.dumps({"name": "photos"}).encode(), 200,
             "POST /storage/v1/b"),
            ("GET", "/storage/v1/b/photos", None, 200, "GET /storage/v1/b/{bucketName}"),
            ("POST", "/upload/storage/v1/b/photos/o?uploadType=media&name=cat.txt", b"meow",
             200, "POST /upload/storage/v1/b/{bucketName}/o"),
            ("GET", "/storage/v1/b/photos/o/cat.txt", None, 200,
             "GET /storage/v1/b/{bucketName}/o/{objectName:.+}"),
            ("GET", "/storage/v1/b/photos/o", None, 200, "GET /storage/v1/b/{bucketName}/o"),
            ("GET", "/storage/v1/b/nothere", None, 404, "GET /storage/v1/b/{bucketName}"),
            # Any host and path is a route for GET, HEAD, POST and PUT (/{objectName:.+}):
            # a PATCH outside /storage/v1 matches none, mux answers 405 itself.
            ("PATCH", "/no/such/api", b"{}", 405, "PATCH"),
        ]
        for method, path, body, status, _ in requests:
            kind = "text/plain" if path.startswith("/upload") else "application/json"
            assert call(method, base + path, body, kind) == status, (method, path)
        spans = server_spans(out, "/no/such/api")
    finally:
        server.stop()
    by_path = {(s["attributes"]["http.request.method"], s["attributes"]["url.path"]): s
               for s in spans if s["attributes"]["url.path"] != "/_internal/healthcheck"}
    for method, path, _, status, name in requests:
        span = by_path[(method, path.partition("?")[0])]
        assert span["name"] == name, (path, span["name"])
        assert span["attributes"]["http.response.status_code"] == status
        route = name.partition(" ")[2]
        if route:
            assert span["attributes"]["http.route"] == route
        else:
            assert "http.route" not in span["attributes"]
    # The raw path, high-cardinality, is never the name.
    assert not [s for s in spans if re.search(r"photos|cat\.txt", s["name"])]
