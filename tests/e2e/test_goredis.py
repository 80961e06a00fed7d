"""go-redis client spans, end to end: tests/apps/redisapp, a real redis-server, real BPF.

The app's HTTP handlers run go-redis commands; every command, pipeline and transaction must
be a CLIENT span under the request's SERVER span. Each HTTP request is its own trace, which
tells the requests' spans apart. Built against two go-redis releases (the struct offsets
differ), stripped (offsets from gotel's database) and not (DWARF).
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import GOTEL, SLACK, GoServer, Gotel, free_port, get, inside, read_jsonl, spans_until
from gotel.goelf import open_binary
from gotel.instrumentation.goredis import probe
from gotel.offsets import database
from gotel.planning import plan_probe
from gotools import APPS, REPO, build_app, build_app_against

pytestmark = pytest.mark.usefixtures("require_root")

REDIS_SERVER = "/usr/bin/redis-server"
MODULE = probe.MODULE
APP = APPS / "redisapp"
PINNED = "v9.22.0"  # tests/apps/redisapp/go.mod
# The oldest v9: baseClient.opt and Options.DB sit at other offsets than in the pinned one.
OLDER = "v9.0.0"
DB_INDEX = 3
PARALLEL = 16  # goroutines of /parallel
# Must appear in no exported span: the query text carries placeholders, never values.
SECRET = "gotel-secret-5d41402abc4b2a76"


# --- the app and the server -------------------------------------------------------------------
def build_redisapp(version: str, *, stripped: bool = False) -> Path:
    """The app against its pinned go-redis or another release (a patched copy)."""
    if version == PINNED:
        return build_app("redisapp", stripped=stripped)
    return build_app_against("redisapp", MODULE, version, stripped=stripped)


def wait_for_redis(port: int, popen: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert popen.poll() is None, "redis-server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"redis-server never answered on port {port}")


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A real redis-server on a free loopback port, without persistence, in a tmp dir."""
    port = free_port()
    popen = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_redis(port, popen)
        yield port
    finally:
        popen.terminate()
        popen.wait(timeout=10)


def post(url: str, body: str) -> str:
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


# --- spans ----------------------------------------------------------------------------------
def request_trace(spans: list[dict], path: str, query: str) -> tuple[dict, list[dict]]:
    """The SERVER span of the one request to path?query, and the rest of its trace by start."""
    [server] = [s for s in spans if s["kind"] == "SERVER"
                and s["attributes"].get("url.path") == path
                and s["attributes"].get("url.query") == query]
    rest = [s for s in spans if s["trace_id"] == server["trace_id"] and s is not server]
    return server, sorted(rest, key=lambda s: s["start_time_unix_nano"])


def check_client(span: dict, server: dict, redis_port: int) -> None:
    """A go-redis span: CLIENT, the child of the request's server span, the server's address."""
    attrs = span["attributes"]
    assert span["kind"] == "CLIENT"
    assert span["parent_span_id"] == server["span_id"]
    assert span["trace_id"] == server["trace_id"]
    assert inside(span, server)
    assert attrs["db.system.name"] == "redis"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == redis_port
    assert attrs["db.namespace"] == str(DB_INDEX)
    assert span["name"] == attrs["db.operation.name"]


# name, db.query.text, batch size, error prefix: POST /commands, in order (see main.go).
COMMANDS = [
    ("SET", "SET ? ?", None, None),
    ("GET", "GET ?", None, None),
    ("GET", "GET ?", None, None),  # a miss: redis.Nil, not an error
    ("INCR", "INCR ?", None, None),
    ("INCR", "INCR ?", None, "ERR"),  # the value is not an integer
    ("PIPELINE", "SET ? ?; GET ?; INCR ?", 3, None),
    ("MULTI", "INCR ?; GET ?", 2, None),
]


@pytest.mark.parametrize(("version", "stripped"), [
    (PINNED, False), (PINNED, True), (OLDER, False), (OLDER, True),
])
def test_commands_pipelines_and_errors_nest_under_the_request(
        version, stripped, redis_port, tmp_path, servers, gotels):
    binary = build_redisapp(version, stripped=stripped)
    with open_binary(binary) as b:
        assert b.has_dwarf != stripped
        assert b.modules[MODULE] == version
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", str(binary), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    app = GoServer(binary, "-redis", f"127.0.0.1:{redis_port}", "-db", str(DB_INDEX))
    servers.append(app)
    line = gotel.wait_for(rf"pid {app.pid} .*attached.*").group(0)
    assert "go-redis" not in line.partition("skipped")[2], line

    # 1. The first command opens the connection: HELLO and the rest run inside its process().
    assert get(f"{app.url}/background?key=first") == 200
    # 2. Pipelines may open a connection of their own: the second /commands is the one checked.
    assert post(f"{app.url}/commands?key=warm", "1").split() == [
        "SET=ok", "GET=ok", "GET-MISSING=nil", "INCR=ok", "INCR-TEXT=ok", "PIPELINE=ok",
        "MULTI=ok"]
    assert post(f"{app.url}/commands?key=k", SECRET).split() == [
        "SET=ok", "GET=ok", "GET-MISSING=nil", "INCR=ok", "INCR-TEXT=error", "PIPELINE=ok",
        "MULTI=ok"]
    # 3. A command given context.Background(): its parent comes from the goroutine.
    assert get(f"{app.url}/background?key=k") == 200
    # 4. Commands from new goroutines at once: each its own span, under the request's.
    assert get(f"{app.url}/parallel?key=k&n={PARALLEL}") == 200

    def complete(spans: list[dict]) -> bool:
        servers_ = [s for s in spans if s["kind"] == "SERVER"]
        return len(servers_) == 5 and len(spans) >= 5 + 1 + 2 * len(COMMANDS) + 1 + PARALLEL

    spans = spans_until(out, complete)
    assert gotel.stop() == 0, gotel.log
    spans = read_jsonl(out, len(spans))
    assert complete(spans), [(s["name"], s["kind"]) for s in spans]

    # The first GET kept its span though the connection's setup ran commands within it.
    server, clients = request_trace(spans, "/background", "key=first")
    gets = [s for s in clients if s["name"] == "GET"]
    assert len(gets) == 1, [s["name"] for s in clients]
    hello = [s for s in clients if s["name"] == "HELLO"]
    assert len(hello) == 1 and inside(hello[0], gets[0]), [s["name"] for s in clients]
    for span in clients:
        check_client(span, server, redis_port)

    # Every command of the checked request, in order, with its attributes and status.
    server, clients = request_trace(spans, "/commands", "key=k")
    assert [s["name"] for s in clients] == [c[0] for c in COMMANDS]
    for span, (name, query, batch, error) in zip(clients, COMMANDS, strict=True):
        check_client(span, server, redis_port)
        attrs = span["attributes"]
        assert attrs["db.operation.name"] == name
        assert attrs["db.query.text"] == query
        assert attrs.get("db.operation.batch.size") == batch
        assert attrs.get("error.type") == error
        assert attrs.get("db.response.status_code") == error
        assert span["status"]["code"] == ("ERROR" if error else "UNSET"), span
    # Consecutive commands of one handler do not overlap.
    for before, after in itertools.pairwise(clients):
        assert before["end_time_unix_nano"] <= after["start_time_unix_nano"] + SLACK

    # context.Background(): the goroutine's span is the parent.
    server, clients = request_trace(spans, "/background", "key=k")
    assert [s["name"] for s in clients] == ["GET"]
    check_client(clients[0], server, redis_port)

    # Parallel GETs (and the setup of any connection they opened) under their request.
    server, clients = request_trace(spans, "/parallel", f"key=k&n={PARALLEL}")
    assert [s["name"] for s in clients].count("GET") == PARALLEL, [s["name"] for s in clients]
    assert len({s["span_id"] for s in clients}) == len(clients)
    for span in clients:
        check_client(span, server, redis_port)

    # No value anywhere: not in the query texts, not in an error, not in any attribute.
    assert SECRET not in out.read_text()


@pytest.mark.parametrize("version", [PINNED, OLDER])
def test_stripped_binaries_get_the_dwarf_offsets_from_the_database(version):
    with open_binary(build_redisapp(version)) as b:
        full = plan_probe(b, probe.CLIENT)
    with open_binary(build_redisapp(version, stripped=True)) as b:
        stripped = plan_probe(b, probe.CLIENT)
    assert full.applies and stripped.applies, (full.skip_reason, stripped.skip_reason)
    assert {h.hook.symbol for h in stripped.hooks} == {h.symbol for h in probe.CLIENT.hooks}
    redis_fields = [f.key for f in probe.FIELDS if f.module == MODULE]
    assert {stripped.fields[k].source for k in redis_fields} == {"database"}
    assert {full.fields[k].source for k in redis_fields} == {"dwarf"}
    assert stripped.constants == full.constants


def dwarf_parameters(binary: Path, functions: set[str]) -> dict[str, list[tuple[str, str]]]:
    """function -> its (name, type) formal parameters, results included, as DWARF says."""
    out: dict[str, list[tuple[str, str]]] = {}
    with binary.open("rb") as f:
        for unit in ELFFile(f).get_dwarf_info().iter_CUs():
            top = unit.get_top_DIE()
            if not top.attributes["DW_AT_name"].value.decode().startswith(MODULE):
                continue
            for die in top.iter_children():
                name = die.attributes.get("DW_AT_name")
                if die.tag != "DW_TAG_subprogram" or not name:
                    continue
                if (symbol := name.value.decode()) in functions:
                    out[symbol] = [
                        (p.attributes["DW_AT_name"].value.decode(),
                         p.get_DIE_from_attribute("DW_AT_type").attributes["DW_AT_name"]
                         .value.decode())
                        for p in die.iter_children() if p.tag == "DW_TAG_formal_parameter"]
    return out


@pytest.mark.parametrize("version", [PINNED, OLDER])
def test_hooked_functions_take_the_arguments_the_programs_read(version):
    """process_entry reads cmd's data word from the 5th integer register, the batch entries
    the []Cmder array and length from the 4th and 5th; all three return an error."""
    context = [("c", f"*{MODULE}.baseClient"), ("ctx", "context.Context")]
    want = {
        f"{MODULE}.(*baseClient).process": [*context, ("cmd", f"{MODULE}.Cmder")],
        f"{MODULE}.(*baseClient).processPipeline": [*context, ("cmds", f"[]{MODULE}.Cmder")],
        f"{MODULE}.(*baseClient).processTxPipeline": [*context, ("cmds", f"[]{MODULE}.Cmder")],
    }
    got = dwarf_parameters(build_redisapp(version), set(want))
    assert got == {k: [*v, ("~r0", "error")] for k, v in want.items()}


def test_a_release_missing_from_the_database_skips_only_the_redis_probe(
        redis_port, tmp_path, servers):
    binary = build_redisapp(PINNED, stripped=True)
    path = tmp_path / "offsets.json"
    database.load(database.BUNDLED).without_version(MODULE, PINNED).save(path)
    env = {database.DB_ENV: str(path)}
    fix = f"fix: gotel offsets update --module {MODULE}@{PINNED}"

    app = GoServer(binary, "-redis", f"127.0.0.1:{redis_port}")
    servers.append(app)
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--pid", str(app.pid), "--exporter", "jsonl", "--output", str(out),
                  env=env)
    try:
        line = gotel.wait_for(rf"pid {app.pid} .*attached.*").group(0)
        skipped = line.partition("skipped: ")[2]
        assert re.search(r"go-redis client \(no offsets for \S+ and \d+ more \("
                         + re.escape(f"{MODULE} {PINNED}: the binary has no DWARF"), skipped), line
        assert fix in skipped, line
        assert "net/http server" not in skipped, line
        # The other probes still trace: the request's server span, and no Redis spans.
        assert post(f"{app.url}/commands?key=k", SECRET).split()[0] == "SET=ok"
        spans = read_jsonl(out, 1)
        assert [s["kind"] for s in spans] == ["SERVER"], spans
    finally:
        assert gotel.stop() == 0, gotel.log
    assert not [s for s in read_jsonl(out, 1, timeout=1) if s["kind"] == "CLIENT"]

    report = subprocess.run([*GOTEL, "inspect", str(binary)], capture_output=True, text=True,
                            cwd=REPO, env=dict(os.environ, **env), check=True).stdout
    row = re.search(r"✗ go-redis client  skipped: (.*)$", report, re.M)
    assert row and fix in row.group(1), report
