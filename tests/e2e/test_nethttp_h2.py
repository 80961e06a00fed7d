"""net/http over HTTP/2 and TLS: server and client spans, and what crosses the wire.

tests/apps/h2app serves over TLS (HTTP/1.1 and h2 by ALPN, with a self-signed certificate
it makes at start), h2c through Go's own Server.Protocols, or h2c through
golang.org/x/net/http2/h2c (whose handler calls bypass serverHandler.ServeHTTP); its /chain
calls the next service with an http.Client speaking h2 (TLS, or h2c with prior knowledge).
A -> B runs under one `gotel attach`: over h2c the trace connects (the injector appends a
traceparent field to the stream's HEADERS frame); over TLS nothing can be inserted, B's span
starts its own trace, and the reason is in `gotel inspect` and counted as `tls` on the detach
line.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import GOTEL, GoServer, Gotel
from gotools import build_app
from otlp_receiver import Receiver

pytestmark = pytest.mark.usefixtures("require_root")

EXTERNAL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
EXTERNAL_PARENT = "00f067aa0ba902b7"
EXTERNAL = f"00-{EXTERNAL_TRACE}-{EXTERNAL_PARENT}-01"
# Insertion outcomes that mean something went wrong (or a framing gotel refuses).
FAILURES = ("pull_failed", "push_failed", "write_failed", "dropped", "h2_lost_context",
            "h2_desync", "h2_unsynced", "h2_stale_context", "h2_split_frame", "h2_no_context")


@pytest.fixture(scope="module")
def h2app() -> Path:
    return build_app("h2app")


def fetch(url: str, headers: dict[str, str] | None = None) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the app's self-signed certificate
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return response.read().decode()


def start_pair(binary: Path, serve: str, servers: list[GoServer], gotel: Gotel):
    """B serves with `serve`; A serves HTTP/1 and calls B over h2 from /chain."""
    b = GoServer(binary, "-serve", serve)
    servers.append(b)
    scheme = "https" if serve == "tls" else "http"
    a = GoServer(binary, "-serve", "http1", "-downstream", f"{scheme}://{b.address}")
    servers.append(a)
    for s in (a, b):
        line = gotel.wait_for(rf"pid {s.pid} .*attached.*").group(0)
        assert "attached 2/2" in line and "traceparent out: on" in line, line
    return a, b


def by_kind(spans: list[dict], pid: int, kind: str) -> list[dict]:
    return [s for s in spans if s["resource"]["process.pid"] == pid and s["kind"] == kind]


def only(spans: list[dict], pid: int, kind: str) -> dict:
    found = by_kind(spans, pid, kind)
    assert len(found) == 1, [(s["name"], s["kind"], s["resource"]["process.pid"]) for s in spans]
    return found[0]


def insertion_counts(gotel: Gotel, pid: int) -> dict[str, int]:
    line = gotel.wait_for(rf"pid {pid}: traceparent insertion: .*").group(0)
    return {name: int(n) for name, n in re.findall(r"(\w+) (\d+)", line.split(": ", 2)[2])}


def attach(binary: Path, receiver: Receiver, gotels: list[Gotel]) -> Gotel:
    gotel = Gotel("attach", "--exe", str(binary),
                  env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint})
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    return gotel


@pytest.mark.parametrize("serve,stripped", [("h2c", False), ("xh2c", False), ("xh2c", True)])
def test_h2c_server_and_client_spans_connect_the_trace(serve, stripped, servers, gotels):
    h2app = build_app("h2app", stripped=stripped)  # stripped: x/net's offsets from the database
    with Receiver() as receiver:
        gotel = attach(h2app, receiver, gotels)
        a, b = start_pair(h2app, serve, servers, gotel)

        # 1. Python -> A (HTTP/1.1) -> B (h2c): one trace, B's span the child of A's client.
        body = fetch(a.url + "/chain?hop=one")
        spans = receiver.spans(wait_for=3, timeout=20)
        a_srv, a_cli = only(spans, a.pid, "SERVER"), only(spans, a.pid, "CLIENT")
        b_srv = only(spans, b.pid, "SERVER")
        assert a_srv["attributes"]["network.protocol.version"] == "1.1"
        assert a_cli["parent_span_id"] == a_srv["span_id"]
        assert a_cli["attributes"]["network.protocol.version"] == "2"
        assert a_cli["attributes"]["url.full"] == f"http://{b.address}/chain?hop=one"
        assert a_cli["attributes"]["http.response.status_code"] == 200
        assert b_srv["name"] == "GET /chain"
        assert b_srv["attributes"]["network.protocol.version"] == "2"
        assert b_srv["attributes"]["url.scheme"] == "http"
        assert b_srv["attributes"]["http.route"] == "/chain"
        assert b_srv["attributes"]["http.response.status_code"] == 200
        assert b_srv["trace_id"] == a_srv["trace_id"] and b_srv["remote_parent"]
        assert b_srv["parent_span_id"] == a_cli["span_id"]
        assert body.strip() == (f"traceparent=00-{a_cli['trace_id']}-{a_cli['span_id']}-01 "
                                "proto=HTTP/2.0")
        # No span for the h2c connection preface ("PRI *") x/net's h2c handler serves.
        assert not [s for s in spans if s["name"].startswith("PRI")], spans

        # 2. A request with its own traceparent goes out as it is; B adopts it.
        body = fetch(a.url + f"/chain?hop=two&traceparent={EXTERNAL}")
        assert body.strip() == f"traceparent={EXTERNAL} proto=HTTP/2.0"
        spans = receiver.spans(wait_for=6, timeout=20)
        adopted = [s for s in by_kind(spans, b.pid, "SERVER") if s["trace_id"] == EXTERNAL_TRACE]
        assert len(adopted) == 1 and adopted[0]["parent_span_id"] == EXTERNAL_PARENT

        # 3. A 503 over h2: the status on both sides (B's from its HTTP/2 response writer).
        try:
            fetch(a.url + "/chain?hop=fail")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        else:
            raise AssertionError("no 503")
        spans = receiver.spans(wait_for=9, timeout=20)
        failed = [s for s in spans if s["attributes"].get("http.response.status_code") == 503]
        assert sorted((s["resource"]["process.pid"], s["kind"]) for s in failed) == sorted(
            [(a.pid, "SERVER"), (a.pid, "CLIENT"), (b.pid, "SERVER")]), failed
        assert all(s["status"]["code"] == "ERROR" for s in failed)

        # 4. Load: 8 goroutines x 250 calls over A's h2c connection(s) to B; each B span
        # is the child of its own client span, and B saw exactly that span's ids.
        calls = 2000
        answer = json.loads(fetch(a.url + f"/load?n={calls}&c=8"))
        assert answer["failed"] == 0 and len(answer["seen"]) == calls, answer["failed"]
        total = 9 + 1 + 2 * calls
        spans = receiver.spans(wait_for=total, timeout=90)
        assert gotel.stop() == 0, gotel.log
        counts = insertion_counts(gotel, a.pid)

    clients = {s["span_id"]: s for s in by_kind(spans, a.pid, "CLIENT")
               if "hop=" in s["attributes"]["url.full"]}
    load_clients = {s["attributes"]["url.full"].rpartition("hop=")[2]: s
                    for s in clients.values()}
    wrong = {hop: seen for hop, seen in answer["seen"].items()
             if seen.strip() != "traceparent=00-{}-{}-01 proto=HTTP/2.0".format(
                 load_clients[hop]["trace_id"], load_clients[hop]["span_id"])}
    assert not wrong, f"{len(wrong)} requests carried other ids: {list(wrong.items())[:3]}"
    b_spans = [s for s in by_kind(spans, b.pid, "SERVER") if s["trace_id"] != EXTERNAL_TRACE]
    orphans = [s for s in b_spans if s.get("parent_span_id") not in clients]
    assert not orphans, f"{len(orphans)} server spans without their client span: {orphans[:2]}"
    assert all(s["attributes"]["network.protocol.version"] == "2" for s in b_spans)
    print(f"h2c ({serve}) insertion counts (A):", counts)
    # Per request one HEADERS frame with its span's context; the caller's own one untouched.
    assert counts.get("h2_injected") == len(b_spans) == calls + 2, counts
    assert counts.get("h2_has_traceparent") == 1, counts
    assert counts.get("h2_connection", 0) >= 1, counts
    problems = {k: v for k, v in counts.items() if k in FAILURES and v}
    assert not problems, counts


def test_tls_spans_adopt_incoming_traceparent_and_say_why_none_goes_out(
        h2app, servers, gotels):
    with Receiver() as receiver:
        gotel = attach(h2app, receiver, gotels)
        a, b = start_pair(h2app, "tls", servers, gotel)
        https = f"https://{b.address}"

        # 1. HTTPS (HTTP/1.1 by ALPN) straight to B with a traceparent: adopted.
        body = fetch(https + "/hello/7", {"traceparent": EXTERNAL})
        assert body.strip() == "hello 7 proto=HTTP/1.1"
        spans = receiver.spans(wait_for=1, timeout=20)
        srv = only(spans, b.pid, "SERVER")
        assert srv["name"] == "GET /hello/{id}"
        assert srv["trace_id"] == EXTERNAL_TRACE and srv["parent_span_id"] == EXTERNAL_PARENT
        assert srv["remote_parent"]
        attrs = srv["attributes"]
        assert attrs["url.scheme"] == "https" and attrs["network.protocol.version"] == "1.1"
        assert attrs["server.port"] == b.port

        # 2. A -> B over h2 on TLS: spans on both sides with protocol 2, no traceparent
        # inserted, so B's span starts a trace of its own.
        body = fetch(a.url + "/chain?hop=tls")
        assert body.strip() == "traceparent= proto=HTTP/2.0"
        spans = receiver.spans(wait_for=4, timeout=20)
        a_cli = only(spans, a.pid, "CLIENT")
        b_srv = [s for s in by_kind(spans, b.pid, "SERVER") if s["name"] == "GET /chain"]
        assert len(b_srv) == 1
        assert a_cli["attributes"]["url.full"] == f"{https}/chain?hop=tls"
        assert a_cli["attributes"]["server.port"] == b.port
        assert a_cli["attributes"]["network.protocol.version"] == "2"
        assert b_srv[0]["attributes"]["network.protocol.version"] == "2"
        assert b_srv[0]["attributes"]["url.scheme"] == "https"
        assert b_srv[0]["trace_id"] != a_cli["trace_id"] and not b_srv[0].get("parent_span_id")

        # 3. h2 on TLS with the caller's own traceparent: the TLS server adopts it.
        body = fetch(a.url + f"/chain?hop=own&traceparent={EXTERNAL}")
        assert body.strip() == f"traceparent={EXTERNAL} proto=HTTP/2.0"
        spans = receiver.spans(wait_for=7, timeout=20)
        adopted = [s for s in by_kind(spans, b.pid, "SERVER")
                   if s["trace_id"] == EXTERNAL_TRACE and s["name"] == "GET /chain"]
        assert len(adopted) == 1 and adopted[0]["parent_span_id"] == EXTERNAL_PARENT
        assert adopted[0]["attributes"]["network.protocol.version"] == "2"

        # 4. An HTTP/1.1 client over TLS (C -> B): its spans, nothing inserted either.
        c = GoServer(h2app, "-serve", "http1", "-call", "http1", "-downstream", https)
        servers.append(c)
        gotel.wait_for(rf"pid {c.pid} .*attached 2/2")
        body = fetch(c.url + "/chain?hop=h1")
        assert body.strip() == "traceparent= proto=HTTP/1.1"
        spans = receiver.spans(wait_for=10, timeout=20)
        c_cli = only(spans, c.pid, "CLIENT")
        assert c_cli["attributes"]["network.protocol.version"] == "1.1"
        assert c_cli["attributes"]["url.full"] == f"{https}/chain?hop=h1"
        h1 = [s for s in by_kind(spans, b.pid, "SERVER")
              if s["attributes"]["network.protocol.version"] == "1.1"
              and s["attributes"]["url.path"] == "/chain"]
        assert len(h1) == 1 and h1[0]["attributes"]["url.scheme"] == "https"
        assert h1[0]["trace_id"] != c_cli["trace_id"]

        assert gotel.stop() == 0, gotel.log
        counts = insertion_counts(gotel, a.pid)
        c_counts = insertion_counts(gotel, c.pid)
    print("tls insertion counts (A, C):", counts, c_counts)
    assert c_counts.get("tls") == 1 and not c_counts.get("injected"), c_counts
    # Every message A sent on its TLS connection was left alone and counted as tls.
    assert counts.get("tls") == 2, counts  # the two h2 requests A made to B
    assert not counts.get("injected") and not counts.get("h2_injected"), counts

    # gotel inspect says why nothing is inserted over TLS.
    inspect = subprocess.run([*GOTEL, "inspect", str(h2app)], capture_output=True, text=True,
                             timeout=120, check=False)
    assert inspect.returncode == 0, inspect.stderr
    report = inspect.stdout
    client = report[report.index("net/http client"):]
    assert re.search(r"not over TLS .*bpf_probe_write_user.*lockdown", client), client
