"""Stripped binaries (no DWARF): offsets come from gotel's database, by exact Go release.

Each Go series is built stripped (-s -w) and unstripped from the same source; gotel must give
the stripped one the same spans. A release missing from the database is refused with one
line naming the field, the version and the command that fixes it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import GOTEL, GoServer, Gotel, get, read_jsonl
from gotel.goelf import open_binary
from gotel.offsets import database
from gotel.offsets.versions import go_release
from gotools import REPO, build_app

pytestmark = pytest.mark.usefixtures("require_root")

# The newest patch of each series the bundled database holds (unit tests check it does).
RELEASES = ["go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", "go1.26.11"]
SPANS_PER_SIDE = 4  # /hello: 1 server span; /chain: front server, front client, leaf server






def traced(binary: Path, tmp_path: Path, servers: list, gotels: list) -> tuple[str, list[dict]]:
    """Probes attached, and the spans for /hello/v and a /chain call from a front server."""
    out = tmp_path / f"{binary.name}.jsonl"
    gotel = Gotel("attach", "--exe", str(binary), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    leaf = GoServer(binary)
    servers.append(leaf)
    front = GoServer(binary, "-downstream", leaf.url)
    servers.append(front)
    attached = gotel.wait_for(rf"pid {leaf.pid} .*attached (\d+/\d+ probes)").group(1)
    gotel.wait_for(rf"pid {front.pid} .*attached")
    assert get(front.url + "/hello/v?x=1") == 200
    assert get(front.url + "/chain") == 200
    spans = read_jsonl(out, SPANS_PER_SIDE)
    assert len(spans) == SPANS_PER_SIDE, gotel.log
    assert gotel.stop() == 0
    ports = {str(s.port) for s in (leaf, front)}
    return attached, normalized(spans, ports)


def normalized(spans: list[dict], ports: set[str]) -> list[dict]:
    """What must not depend on how the binary was built: names, kinds, attributes, links."""
    by_id = {s["span_id"]: s for s in spans}
    out = []
    for s in spans:
        attrs = {}
        for key, value in s["attributes"].items():
            text = str(value)
            for port in ports:
                text = text.replace(port, "PORT")
            attrs[key] = "PORT" if "port" in key else text
        parent = by_id.get(s.get("parent_span_id") or "")
        out.append({
            "name": s["name"],
            "kind": s["kind"],
            "attributes": attrs,
            "parent": (parent["kind"], parent["name"]) if parent else None,
        })
    return sorted(out, key=lambda s: json.dumps(s, sort_keys=True))


@pytest.mark.parametrize("toolchain", RELEASES)
def test_stripped_gives_the_same_spans(toolchain, tmp_path, servers, gotels):
    stripped = build_app("httpserver", toolchain=toolchain, stripped=True)
    with open_binary(stripped) as b:
        assert not b.has_dwarf and b.go_version == toolchain
    want = traced(build_app("httpserver", toolchain=toolchain), tmp_path, servers, gotels)
    attached, got = traced(stripped, tmp_path, servers, gotels)
    assert (attached, got) == want
    hello = [s for s in got if s["attributes"].get("url.path") == "/hello/v"]
    assert len(hello) == 1
    route = None if toolchain.startswith("go1.21.") else "/hello/{id}"
    assert hello[0]["attributes"].get("http.route") == route
    assert hello[0]["attributes"]["url.query"] == "x=1"
    # The client span is the child of the front server's span (goroutine and context offsets).
    clients = [s for s in got if s["kind"] == "CLIENT"]
    assert len(clients) == 1 and clients[0]["parent"][0] == "SERVER"


def test_stripped_pie(tmp_path, servers, gotels):
    binary = build_app("httpserver", stripped=True, pie=True)
    with open_binary(binary) as b:
        assert b.pie and not b.has_dwarf
    server = GoServer(binary)
    servers.append(server)
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--pid", str(server.pid), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for(rf"pid {server.pid} .*attached")
    assert get(server.url + "/hello/pie") == 200
    spans = read_jsonl(out, 1)
    assert [s["name"] for s in spans] == ["GET /hello/{id}"], gotel.log
    assert spans[0]["attributes"]["url.path"] == "/hello/pie"
    assert spans[0]["attributes"]["http.response.status_code"] == 200
    assert gotel.stop() == 0


def inspect(binary: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([*GOTEL, "inspect", str(binary)], capture_output=True, text=True,
                          cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_inspect_shows_offsets_from_the_database():
    report = inspect(build_app("httpserver", stripped=True))
    assert "dwarf:       no (stripped)" in report
    rows = re.findall(r"^\s+offset (\S+)\s+(\S+)\s+(\w+)$", report, re.M)
    assert rows and {source for _, _, source in rows} == {"database"}, report


def test_a_release_missing_from_the_database_is_refused_clearly(tmp_path, servers):
    binary = build_app("httpserver", stripped=True)
    with open_binary(binary) as b:
        version = go_release(b.go_version)
    path = tmp_path / "offsets.json"
    database.load(database.BUNDLED).without_version("std", version).save(path)
    env = dict(os.environ, **{database.DB_ENV: str(path)})
    fix = f"gotel offsets update --go {version}"

    server = GoServer(binary)
    servers.append(server)
    proc = subprocess.run([*GOTEL, "attach", "--pid", str(server.pid), "--exporter", "none"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"gotel: pid {server.pid}: no probe could attach (")
    assert re.search(r"no offsets for \S+\.\S+ and \d+ more \(Go " + re.escape(version), last)
    assert f"fix: {fix}" in last

    report = inspect(binary, env)
    skipped = dict(re.findall(r"✗ (.+?)  skipped: (.*)$", report, re.M))
    for probe in ("net/http server", "net/http client"):  # the probes with std fields
        assert skipped.get(probe, "").startswith("no offsets for "), report
        assert skipped[probe].endswith(f"(Go {version}: the binary has no DWARF, and gotel's "
                                       f"offsets database never scanned this version); "
                                       f"fix: {fix}"), report
    assert re.search(r"offset \S+\s+-\s+missing$", report, re.M)


