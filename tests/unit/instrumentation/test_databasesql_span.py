"""database/sql events -> spans: query text without values, names, server from the DSN."""

from __future__ import annotations

import time

import pytest
from probe_testing import span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.databasesql.probe import CLIENT, system_hint
from gotel.instrumentation.databasesql.semconv import operation_and_collection, redact, server_of
from gotel.trace import BootClock, SpanKind

QUERY, EXEC, PREPARE, BEGIN, COMMIT, ROLLBACK = 1, 2, 3, 4, 5, 6  # enum sql_operation


@pytest.fixture(scope="module")
def layout():
    assert CLIENT.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(CLIENT.bpf_object) as obj:
        yield obj.struct_layout(CLIENT.event)


def event(layout, *, query="", driver="", dsn="", **overrides):
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    values = dict(start_ns=now - 1_000_000, end_ns=now, error_type=0, pid=7, trace_flags=1,
                  trace_id=bytes(range(16, 32)), span_id=bytes(range(8, 16)),
                  parent_span_id=bytes(range(1, 9)), operation=QUERY, system_hint=0, _pad=0)
    values.update(overrides)
    for name, value in (("query", query), ("driver", driver), ("dsn", dsn)):
        raw = value.encode()
        values[name] = raw
        values[f"{name}_len"] = len(raw)
    return layout.encoder()(values)


def test_query_span_has_no_literal_values(layout):
    record = event(layout, query="SELECT * FROM users WHERE email = 'a@b.c' AND age > 41",
                   driver="pgx", dsn="postgres://app:hunter2@db.internal:6432/shop")
    span = span_from(CLIENT, record, BootClock())
    assert span.name == "SELECT users"
    assert span.kind == SpanKind.CLIENT
    assert span.attributes == {
        "db.system.name": "postgresql",
        "db.query.text": "SELECT * FROM users WHERE email = ? AND age > ?",
        "db.operation.name": "SELECT",
        "db.collection.name": "users",
        "server.address": "db.internal",
        "server.port": 6432,
        "db.namespace": "shop",
    }
    assert "hunter2" not in repr(span) and "a@b.c" not in repr(span)
    assert not span.error


def test_values_kept_when_asked(layout, monkeypatch):
    monkeypatch.setenv("GOTEL_DB_QUERY_VALUES", "keep")
    span = span_from(CLIENT, event(layout, query="DELETE FROM t WHERE id = 7"), BootClock())
    assert span.attributes["db.query.text"] == "DELETE FROM t WHERE id = 7"


def test_transaction_spans_and_errors(layout):
    commit = span_from(CLIENT, event(layout, operation=COMMIT, driver="sqlite"), BootClock())
    assert commit.name == "COMMIT" and commit.attributes == {
        "db.system.name": "sqlite", "db.operation.name": "COMMIT"}
    failed = span_from(CLIENT, event(layout, operation=EXEC, query="INSERT INTO t VALUES (1)",
                                     error_type=0xC0FFEE), BootClock())
    assert failed.error and failed.attributes["error.type"] == "_OTHER"
    assert failed.attributes["db.system.name"] == "other_sql"  # no Open seen, no hint


def test_prepare_and_system_hint(layout):
    span = span_from(CLIENT, event(layout, operation=PREPARE, query="SELECT a FROM b WHERE c = $1",
                                   system_hint=1), BootClock())
    assert span.name == "PREPARE SELECT b"
    assert span.attributes["db.system.name"] == "postgresql"
    assert span.attributes["db.query.text"] == "SELECT a FROM b WHERE c = $1"


def test_truncated_query_is_marked(layout):
    long = "SELECT x FROM t WHERE " + " OR ".join(f"x = {i}" for i in range(200))
    span = span_from(CLIENT, event(layout, query=long), BootClock())
    assert span.attributes["gotel.truncated"] == "db.query.text"
    assert "1" not in span.attributes["db.query.text"].removeprefix("SELECT x FROM t WHERE ")


@pytest.mark.parametrize(("query", "redacted"), [
    ("SELECT 'it''s', E'x\\n', 3.5e2, -4 FROM t", "SELECT ?, ?, ?, ? FROM t"),
    ("SELECT t1.c2 FROM t1 WHERE a = $1 AND b = ?2 AND c = :3", None),
    ("UPDATE t SET v = 0x1F WHERE k = 'a'", "UPDATE t SET v = ? WHERE k = ?"),
    ("SELECT * FROM t WHERE s = 'unterminated", "SELECT * FROM t WHERE s = ?"),
])
def test_redact(query, redacted):
    assert redact(query) == (redacted or query)


@pytest.mark.parametrize(("query", "expected"), [
    ("select * from items where id = 1", ("SELECT", "items")),
    ("SELECT * FROM a JOIN b ON a.x = b.y", ("SELECT", "")),
    ("SELECT * FROM a, b", ("SELECT", "")),
    ("SELECT * FROM (SELECT 1) s", ("SELECT", "")),
    ("SELECT * FROM items ORDER BY a, b", ("SELECT", "items")),
    ('INSERT INTO "Shop"."Items" (a) VALUES (1)', ("INSERT", "Shop.Items")),
    ("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("INSERT", "kv")),
    ("CREATE TABLE IF NOT EXISTS kv (k TEXT)", ("CREATE", "kv")),
    ("WITH x AS (SELECT 1) SELECT * FROM x", ("WITH", "")),
    ("", ("", "")),
])
def test_operation_and_collection(query, expected):
    assert operation_and_collection(query) == expected


@pytest.mark.parametrize(("dsn", "system", "expected"), [
    ("postgres://u:p@h:1/db?sslmode=disable", "postgresql", ("h", 1, "db")),
    ("postgresql://h/db", "postgresql", ("h", 5432, "db")),
    ("host=10.1.2.3 port=5433 user=u password='p w' dbname=shop", "postgresql",
     ("10.1.2.3", 5433, "shop")),
    ("user:pw@tcp(db:3307)/shop?parseTime=true", "mysql", ("db", 3307, "shop")),
    ("/var/lib/app.db", "sqlite", ("", None, "")),
    ("file:app.db?cache=shared", "sqlite", ("", None, "")),
    ("postgres://u@/db?host=/run/postgresql", "postgresql", ("", None, "db")),
    ("", "postgresql", ("", None, "")),
])
def test_server_of(dsn, system, expected):
    assert server_of(dsn, system) == expected


def test_system_hint_from_driver_modules():
    assert system_hint({"github.com/jackc/pgx/v5": "v5.7.1"}) == {"system_hint": 1}
    assert system_hint({"github.com/lib/pq": "v1", "github.com/jackc/pgx/v5": "v5"}) == {
        "system_hint": 1}  # two drivers, one system
    assert system_hint({"modernc.org/sqlite": "v1", "github.com/lib/pq": "v1"}) == {}
    assert system_hint({}) == {}


def test_python_constants_match_the_objects_enums():
    from gotel.instrumentation.databasesql import probe

    with BpfObject(CLIENT.bpf_object) as obj:
        operations = obj.enum_values("sql_operation")
        systems = obj.enum_values("sql_system")
    assert [operations[f"SQL_OP_{n}"] for n in ("QUERY", "EXEC", "PREPARE", "BEGIN", "COMMIT",
                                                 "ROLLBACK")] == list(probe.OPERATIONS)
    assert operations["SQL_OP_PREPARE"] == probe.OP_PREPARE
    assert {systems[f"SQL_SYSTEM_{name.upper()}"]: name for name in probe.SYSTEMS.values()} \
        == probe.SYSTEMS
