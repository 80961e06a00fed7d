"""Spans started by hand with the OpenTelemetry Go API, bridged, end to end: tests/apps/otelapp,
real BPF, no write into the program (this machine's lockdown forbids it anyway).

Each handler starts spans through the global tracer, which has no SDK behind it: gotel must
export them with their name, kind, attributes and status, as children of the request's SERVER
span and as parents of the HTTP client and SQL spans made with their Context (the HTTP
calls' server side, the /leaf request, joins the trace through the injected traceparent).
Built against three otel releases, stripped (offsets from gotel's database) and not (DWARF),
and as a PIE.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import GOTEL, GoServer, Gotel, get, inside, read_jsonl, spans_until
from gotel.goelf import open_binary
from gotel.instrumentation.otelapi import probe
from gotel.offsets import database
from gotel.planning import plan_probe
from gotools import REPO, build_app, build_app_against

pytestmark = pytest.mark.usefixtures("require_root")

MODULE = probe.MODULE
PINNED = "v1.47.0"  # tests/apps/otelapp/go.mod
OLDER = ("v1.43.0", "v1.38.0")
# Released with go.opentelemetry.io/otel under the same version numbers.
SIBLINGS = ("go.opentelemetry.io/otel/trace", "go.opentelemetry.io/otel/sdk",
            "go.opentelemetry.io/otel/metric",
            "go.opentelemetry.io/otel/exporters/stdout/stdouttrace")
WORK_ATTRIBUTES = {
    "app.tier": "gold", "app.items": 3, "app.cached": True, "app.ratio": 0.25,
    "app.tags": ["a", "bc"], "app.sizes": [1, 2, 3],  # WithAttributes at Start
    "app.later": "set", "app.count": 42,  # SetAttributes
}


def build_otelapp(version: str = PINNED, *, stripped: bool = False, pie: bool = False) -> Path:
    if version == PINNED:
        return build_app("otelapp", stripped=stripped, pie=pie)
    assert not pie
    return build_app_against("otelapp", MODULE, version, stripped=stripped, siblings=SIBLINGS)


class Trace:
    """The spans of the one request to `path`, by name and by parent."""

    def __init__(self, spans: list[dict], path: str) -> None:
        [self.server] = [s for s in spans if s["kind"] == "SERVER"
                         and s["attributes"].get("url.path") == path]
        self.spans = [s for s in spans if s["trace_id"] == self.server["trace_id"]]

    def named(self, name: str) -> dict:
        [span] = [s for s in self.spans if s["name"] == name]
        return span

    def children(self, parent: dict) -> list[dict]:
        found = [s for s in self.spans if s.get("parent_span_id") == parent["span_id"]]
        return sorted(found, key=lambda s: s["start_time_unix_nano"])


def check_child(span: dict, parent: dict) -> None:
    assert span["trace_id"] == parent["trace_id"]
    assert span["parent_span_id"] == parent["span_id"], (span["name"], parent["name"])
    assert inside(span, parent), (span["name"], parent["name"])


def check_client_call(trace: Trace, parent: dict) -> None:
    """parent's one HTTP client call to /leaf, and /leaf's server span under it."""
    [client] = [s for s in trace.children(parent) if s["kind"] == "CLIENT"
                and s["scope"] == "gotel/net/http"]
    check_child(client, parent)
    assert client["attributes"]["url.full"].endswith("/leaf")
    [leaf] = trace.children(client)
    assert leaf["kind"] == "SERVER" and leaf["attributes"]["url.path"] == "/leaf"


@pytest.mark.parametrize(("version", "stripped", "pie"), [
    (PINNED, False, False), (PINNED, True, False), (PINNED, False, True),
    (OLDER[0], False, False), (OLDER[1], True, False),
])
def test_manual_spans_sit_between_automatic_spans(version, stripped, pie, tmp_path, servers,
                                                   gotels):
    binary = build_otelapp(version, stripped=stripped, pie=pie)
    with open_binary(binary) as b:
        assert b.has_dwarf != stripped and b.pie == pie
        assert b.modules[MODULE] == version
    out = tmp_path / "spans.jsonl"
    app = GoServer(binary)
    servers.append(app)
    # Each path once before gotel: a BPF program cannot fault in a page, and the first call
    # of a path may find its string constants (a query text) not yet resident.
    paths = ("/work", "/fail", "/nested", "/background", "/limits", "/db")
    call_all(app.url, paths)
    gotel = Gotel("attach", "--pid", str(app.pid), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    line = gotel.wait_for(rf"pid {app.pid} .*attached.*").group(0)
    assert "OpenTelemetry" not in line.partition("skipped")[2], line
    call_all(app.url, paths)

    def complete(spans: list[dict]) -> bool:
        # 6 requests + 4 /leaf calls (client and server) + 7 manual spans + 2 SQL spans
        return len(spans) >= 6 + 4 * 2 + 7 + 2
    spans = spans_until(out, complete)
    assert gotel.stop() == 0, gotel.log
    spans = read_jsonl(out, len(spans))
    assert complete(spans), [(s["name"], s["kind"]) for s in spans]
    manual = [s for s in spans if s["scope"] == probe.SCOPE]
    assert len(manual) == 7, [s["name"] for s in manual]

    # /work: server -> manual span (renamed, every attribute kind) -> client -> /leaf server.
    work = Trace(spans, "/work")
    span = work.named("manual-work-renamed")
    check_child(span, work.server)
    assert span["kind"] == "INTERNAL"
    assert span["attributes"] == WORK_ATTRIBUTES
    assert span["status"]["code"] == "UNSET"
    check_client_call(work, span)

    # /fail: the kind WithSpanKind gave, the status SetStatus gave.
    fail = Trace(spans, "/fail")
    span = fail.named("manual-fail")
    check_child(span, fail.server)
    assert span["kind"] == "CLIENT"
    assert span["status"] == {"code": "ERROR", "message": "it broke"}

    # /nested: outer -> inner (PRODUCER) -> client; outer -> client.
    nested = Trace(spans, "/nested")
    outer, inner = nested.named("manual-outer"), nested.named("manual-inner")
    check_child(outer, nested.server)
    check_child(inner, outer)
    assert inner["kind"] == "PRODUCER"
    check_client_call(nested, inner)
    check_client_call(nested, outer)

    # /background: a span started in another goroutine with the request's Context.
    background = Trace(spans, "/background")
    span = background.named("manual-background")
    check_child(span, background.server)
    check_client_call(background, span)

    # /limits: the slots gotel keeps, and what it says of the rest.
    limits = Trace(spans, "/limits")
    [span] = [s for s in limits.spans if s["scope"] == probe.SCOPE]
    check_child(span, limits.server)
    attrs = span["attributes"]
    assert span["name"] == "n" * 96
    assert [k for k in attrs if k.startswith("app.n")] == [f"app.n{i:02d}" for i in range(14)]
    assert attrs["app.n13"] == 13
    assert attrs["app.long"] == "v" * 96
    long_key = ("app." + "k" * 40)[:32]
    assert attrs[long_key] == "x"
    assert attrs["gotel.dropped_attributes"] == 6
    assert set(attrs["gotel.truncated"].split(",")) == {"span.name", "app.long", long_key}

    # /db: server -> manual span -> the SQL spans of the queries made with its Context.
    db = Trace(spans, "/db")
    span = db.named("manual-db")
    check_child(span, db.server)
    queries = db.children(span)
    assert [(q["name"], q["kind"]) for q in queries] == [("SELECT items", "CLIENT"),
                                                        ("INSERT items", "CLIENT")]
    for query in queries:
        check_child(query, span)
        assert query["attributes"]["db.system.name"] == "sqlite"
    assert queries[0]["attributes"]["db.query.text"] == (
        "SELECT count(*) FROM items WHERE name = ?")


def call_all(base: str, paths: tuple[str, ...]) -> None:
    for path in paths:
        get(f"{base}{path}") if path != "/fail" else _expect_500(f"{base}{path}")


def _expect_500(url: str) -> None:
    try:
        get(url)
    except Exception as exc:  # urllib raises HTTPError for 5xx
        assert getattr(exc, "code", None) == 500, exc
    else:
        raise AssertionError(f"{url} did not fail")


def test_a_program_with_its_own_sdk_is_not_bridged_twice(tmp_path, servers, gotels):
    """With an SDK installed the program exports its spans itself; gotel makes none of them
    (the global tracer delegates to the SDK and never reaches newSpan)."""
    binary = build_otelapp()
    out = tmp_path / "spans.jsonl"
    app = GoServer(binary, "-sdk")
    servers.append(app)
    gotel = Gotel("attach", "--pid", str(app.pid), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    line = gotel.wait_for(rf"pid {app.pid} .*attached.*").group(0)
    assert "OpenTelemetry" not in line.partition("skipped")[2], line  # attached, and idle
    get(f"{app.url}/work")
    spans = spans_until(out, lambda s: len(s) >= 3)  # /work, its client call, /leaf
    time.sleep(1)
    assert gotel.stop() == 0, gotel.log
    spans = read_jsonl(out, len(spans))
    assert sorted(s["kind"] for s in spans) == ["CLIENT", "SERVER", "SERVER"], spans
    assert not [s for s in spans if s["scope"] == probe.SCOPE]
    app.stop()
    assert app.popen.stdout is not None
    printed = app.popen.stdout.read()
    assert '"Name":"manual-work-renamed"' in printed.replace(" ", ""), printed[:500]


def test_stripped_binaries_get_the_attribute_offsets_from_the_database():
    with open_binary(build_otelapp()) as b:
        full = plan_probe(b, probe.BRIDGE)
    with open_binary(build_otelapp(stripped=True)) as b:
        stripped = plan_probe(b, probe.BRIDGE)
    assert full.applies and stripped.applies, (full.skip_reason, stripped.skip_reason)
    otel_fields = [f.key for f in probe.FIELDS if f.module == MODULE]
    assert {stripped.fields[k].source for k in otel_fields} == {"database"}
    assert {full.fields[k].source for k in otel_fields} == {"dwarf"}
    assert stripped.constants == full.constants
    assert {"new_span_address", "attr_option_method", "kv_size"} <= set(full.constants)


def test_a_release_missing_from_the_database_skips_only_the_bridge(tmp_path, servers):
    binary = build_otelapp(stripped=True)
    path = tmp_path / "offsets.json"
    database.load(database.BUNDLED).without_version(MODULE, PINNED).save(path)
    env = {database.DB_ENV: str(path)}
    fix = f"fix: gotel offsets update --module {MODULE}@{PINNED}"

    app = GoServer(binary)
    servers.append(app)
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--pid", str(app.pid), "--exporter", "jsonl", "--output", str(out),
                  env=env)
    try:
        line = gotel.wait_for(rf"pid {app.pid} .*attached.*").group(0)
        skipped = line.partition("skipped: ")[2]
        assert re.search(r"OpenTelemetry API bridge \(no offsets for ", skipped), line
        assert fix in skipped, line
        assert "net/http server" not in skipped, line
        _expect_500(f"{app.url}/fail")
        spans = read_jsonl(out, 1)
        assert [s["kind"] for s in spans] == ["SERVER"], spans
    finally:
        assert gotel.stop() == 0, gotel.log

    report = subprocess.run([*GOTEL, "inspect", str(binary)], capture_output=True, text=True,
                            cwd=REPO, env=dict(os.environ, **env), check=True).stdout
    row = re.search(r"✗ OpenTelemetry API bridge  skipped: (.*)$", report, re.M)
    assert row and fix in row.group(1), report
