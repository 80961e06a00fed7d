"""database/sql spans from real drivers against real databases: PostgreSQL (pgx, lib/pq)
started by the test, SQLite through modernc.org/sqlite (pure Go) and mattn/go-sqlite3 (cgo,
an externally linked binary). The service is tests/apps/sqlapp: each handler's SQL calls
must be CLIENT spans under its HTTP server span, with no literal value exported."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GOTEL, GoServer, Gotel, free_port, get, read_jsonl
from gotools import APPS, build_app

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECRETS = ("s3cr3t-literal", "987654321", "s3cr3t-argument")  # tests/apps/sqlapp/app
# Handler -> the SQL spans it makes, in order (names).
EXPECTED = {
    "/query": ["SELECT items"],
    "/exec": ["INSERT items"],
    "/tx": ["BEGIN", "UPDATE items", "COMMIT", "BEGIN", "ROLLBACK"],
    # Statements prepared, then executed: the executions take the prepared query text.
    "/prepare": ["PREPARE SELECT items", "SELECT items", "PREPARE UPDATE items", "UPDATE items"],
    "/error": ["SELECT no_such_table"],
    "/background": ["DELETE items"],  # on a goroutine the handler started: its child all the same
}


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A real PostgreSQL 15 server on a free loopback port, as the postgres user."""
    assert (PG_BIN / "initdb").exists(), "PostgreSQL 15 is not installed (scripts/test.sh does it)"
    user = pwd.getpwnam("postgres")
    # Not under pytest's tmp dirs: those are root's alone, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="gotel-pg-"))
    data = root / "data"
    data.mkdir()
    for d in (root, data):
        os.chown(d, user.pw_uid, user.pw_gid)
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres"], check=True, capture_output=True)
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(root / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield port
    finally:
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def dsn_for(driver: str, postgres_port: int | None, tmp_path: Path) -> str:
    if driver == "pgx":
        return f"postgres://postgres:pw@127.0.0.1:{postgres_port}/postgres?sslmode=disable"
    if driver == "pq":
        return f"host=127.0.0.1 port={postgres_port} user=postgres dbname=postgres sslmode=disable"
    return str(tmp_path / "items.db")


def sql_binary(driver: str, stripped: bool = False, toolchain: str | None = None) -> Path:
    return build_app(APPS / "sqlapp", package=f"./{driver}", stripped=stripped,
                     toolchain=toolchain)


def exercise(url: str) -> None:
    for path in EXPECTED:
        assert get(url + path) == 200, path


def check_spans(spans: list[dict], system: str, with_server: int | None) -> None:
    servers = {s["span_id"]: s for s in spans if s["kind"] == "SERVER"}
    assert len(servers) == len(EXPECTED), [s["name"] for s in spans]
    by_path = {s["attributes"]["url.path"]: s for s in servers.values()}
    of_path: dict[str, list[dict]] = {}
    for path, names in EXPECTED.items():
        parent = by_path[path]
        children = sorted((s for s in spans if s.get("parent_span_id") == parent["span_id"]),
                          key=lambda s: s["start_time_unix_nano"])
        of_path[path] = children
        assert [c["name"] for c in children] == names, (path, [c["name"] for c in children])
        for child in children:
            attrs = child["attributes"]
            assert child["kind"] == "CLIENT" and child["trace_id"] == parent["trace_id"]
            assert attrs["db.system.name"] == system, attrs
            assert child["scope"] == "gotel/database/sql", child["scope"]
            if with_server:
                assert attrs["server.address"] == "127.0.0.1", attrs
                assert attrs["server.port"] == with_server, attrs
            else:
                assert "server.address" not in attrs, attrs
            error = path == "/error"
            assert (child["status"]["code"] == "ERROR") == error, child
    prepared = [c["attributes"]["db.query.text"] for c in of_path["/prepare"]]
    assert prepared == ["SELECT name FROM items WHERE id = $1"] * 2 + [
        "UPDATE items SET name = $1 WHERE id = ?"] * 2
    query = of_path["/query"][0]["attributes"]
    assert query["db.query.text"] == "SELECT id, name FROM items WHERE name <> ? AND id < ?"
    assert query["db.operation.name"] == "SELECT" and query["db.collection.name"] == "items"
    insert = next(s for s in spans if s["name"] == "INSERT items")["attributes"]
    assert insert["db.query.text"] == "INSERT INTO items (id, name) VALUES ($1, $2)"
    text = repr(spans)
    for secret in SECRETS:  # neither literals in the query text nor argument values
        assert secret not in text


def run_traced(binary: Path, dsn: str, out: Path, gotels: list[Gotel]) -> tuple[Gotel, str]:
    """`gotel run` the service: sql.Open runs under the probes."""
    gotel = Gotel("run", "--exporter", "jsonl", "--output", str(out), "--", str(binary),
                  "-addr", "127.0.0.1:0", "-dsn", dsn)
    gotels.append(gotel)
    assert gotel.popen.stdout is not None
    line = gotel.popen.stdout.readline().strip()
    assert line.startswith("listening on "), gotel.log
    return gotel, "http://" + line.removeprefix("listening on ")


def stop_run(gotel: Gotel) -> None:
    pid = int(gotel.wait_for(r"pid (\d+) \(").group(1))
    os.kill(pid, signal.SIGTERM)
    gotel.popen.wait(timeout=20)


# (driver, system, stripped, Go toolchain): database/sql's hooked functions have kept their
# signatures since Go 1.21 (checked up to 1.27); the oldest releases are built too.
CASES = [("pgx", "postgresql", False, None), ("pq", "postgresql", False, None),
         ("modernc", "sqlite", False, None), ("mattn", "sqlite", False, None),
         ("pgx", "postgresql", True, None), ("mattn", "sqlite", True, None),
         ("modernc", "sqlite", True, "go1.21.13"), ("modernc", "sqlite", False, "go1.22.12")]


@pytest.mark.parametrize(("driver", "system", "stripped", "toolchain"), CASES,
                         ids=[f"{d}{'-stripped' if s else ''}{'-' + t if t else ''}"
                              for d, _, s, t in CASES])
def test_sql_spans_nest_under_http_spans(driver, system, stripped, toolchain, request, tmp_path,
                                         gotels):
    port = request.getfixturevalue("postgres") if system == "postgresql" else None
    out = tmp_path / "spans.jsonl"
    gotel, url = run_traced(sql_binary(driver, stripped, toolchain),
                            dsn_for(driver, port, tmp_path), out, gotels)
    gotel.wait_for(r"attached \d+/\d+ probes")
    assert "database/sql client" not in gotel.wait_for(r"attached").string.partition("skipped")[2]
    exercise(url)
    want = len(EXPECTED) + sum(map(len, EXPECTED.values())) + 1  # + the service's CREATE TABLE
    spans = read_jsonl(out, want)
    stop_run(gotel)
    spans = read_jsonl(out, want)
    check_spans(spans, system, port)
    create = [s for s in spans if s["name"] == "CREATE items"]
    assert len(create) == 1 and not create[0]["parent_span_id"], create  # a root span
    if system == "postgresql":
        assert create[0]["attributes"]["db.namespace"] == "postgres"


def test_attached_later_still_names_the_system(postgres, tmp_path, servers, gotels):
    """sql.Open ran before gotel: no server address, the system from the driver module."""
    server = GoServer(sql_binary("pq"), "-dsn", dsn_for("pq", postgres, tmp_path))
    servers.append(server)
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--pid", str(server.pid), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for(r"attached \d+/\d+ probes")
    exercise(server.url)
    spans = read_jsonl(out, len(EXPECTED) + sum(map(len, EXPECTED.values())))
    check_spans(spans, "postgresql", None)


def test_query_values_kept_on_request(tmp_path, gotels, monkeypatch):
    monkeypatch.setenv("GOTEL_DB_QUERY_VALUES", "keep")
    out = tmp_path / "spans.jsonl"
    gotel, url = run_traced(sql_binary("modernc"), dsn_for("modernc", None, tmp_path), out,
                            gotels)
    gotel.wait_for(r"attached \d+/\d+ probes")
    assert get(url + "/query") == 200
    stop_run(gotel)
    query = next(s for s in read_jsonl(out, 3) if s["name"] == "SELECT items")
    assert "'s3cr3t-literal'" in query["attributes"]["db.query.text"]
    assert "987654321" in query["attributes"]["db.query.text"]


def test_inspect_lists_the_sql_probe():
    result = subprocess.run([*GOTEL, "inspect", str(sql_binary("pgx"))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "✓ database/sql client" in result.stdout
    for symbol in ("(*DB).queryDC", "(*DB).execDC", "(*DB).prepareDC", "(*DB).BeginTx",
                   "(*Tx).Commit", "(*Tx).rollback", "database/sql.Open"):
        assert symbol in result.stdout, symbol

