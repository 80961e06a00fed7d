"""Whole traces across three Go services: A -> B -> C, all instrumented by one gotel."""

from __future__ import annotations

import itertools
import time
import urllib.request

import pytest

from conftest import GoServer, Gotel
from gotools import build_app
from otlp_receiver import Receiver

pytestmark = pytest.mark.usefixtures("require_root")

EXTERNAL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
EXTERNAL_PARENT = "00f067aa0ba902b7"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[str, int, int]:
    start = time.time_ns()
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    return body, start, time.time_ns()


def start_chain(binary, servers):
    c = GoServer(binary)
    b = GoServer(binary, "-downstream", c.url)
    a = GoServer(binary, "-downstream", b.url)
    servers.extend([c, b, a])
    return a, b, c


def trace_of(spans: list[dict], trace_id: str) -> list[dict]:
    return [s for s in spans if s["trace_id"] == trace_id]


def one(spans: list[dict], pid: int, kind: str) -> dict:
    found = [s for s in spans if s["resource"]["process.pid"] == pid and s["kind"] == kind]
    assert len(found) == 1, found
    return found[0]


def check_chain(spans, a, b, c, window):
    """A server -> A client -> B server -> B client -> C server, nested in time."""
    assert len(spans) == 5, [(s["name"], s["resource"]["process.pid"]) for s in spans]
    a_srv, a_cli = one(spans, a.pid, "SERVER"), one(spans, a.pid, "CLIENT")
    b_srv, b_cli = one(spans, b.pid, "SERVER"), one(spans, b.pid, "CLIENT")
    c_srv = one(spans, c.pid, "SERVER")
    assert a_cli["parent_span_id"] == a_srv["span_id"]
    assert b_srv["parent_span_id"] == a_cli["span_id"]
    assert b_cli["parent_span_id"] == b_srv["span_id"]
    assert c_srv["parent_span_id"] == b_cli["span_id"]
    assert b_srv["remote_parent"] and c_srv["remote_parent"]
    assert a_cli["attributes"]["url.full"].startswith(b.url + "/chain")
    assert a_cli["attributes"]["http.response.status_code"] == 200
    assert a_cli["attributes"]["server.port"] == b.port
    order = [a_srv, a_cli, b_srv, b_cli, c_srv]
    for outer, inner in itertools.pairwise(order):
        # Each span lies inside its parent (clocks of one machine: 1 ms of slack).
        assert outer["start_time_unix_nano"] <= inner["start_time_unix_nano"] + 1_000_000
        assert inner["end_time_unix_nano"] <= outer["end_time_unix_nano"] + 1_000_000
    start, end = window
    assert start - 2_000_000 <= a_srv["start_time_unix_nano"]
    assert a_srv["end_time_unix_nano"] <= end + 2_000_000
    return c_srv, b_cli


@pytest.mark.parametrize("toolchain", ["go1.21.13", None])
def test_three_hop_chain(toolchain, servers, gotels):
    binary = build_app("httpserver", toolchain=toolchain)
    with Receiver() as receiver:
        gotel = Gotel("attach", "--exe", str(binary),
                      env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint})
        gotels.append(gotel)
        gotel.wait_for("watching for processes")
        a, b, c = start_chain(binary, servers)
        for s in (a, b, c):
            gotel.wait_for(rf"pid {s.pid} .*attached 2/2")

        # 1. A plain request: one trace through all three services.
        body, t0, t1 = get(a.url + "/chain")
        spans = receiver.spans(wait_for=5, timeout=15)
        traces = {s["trace_id"] for s in spans}
        assert len(traces) == 1, spans
        _c_srv, b_cli = check_chain(spans, a, b, c, (t0, t1))
        assert a.pid != b.pid
        assert not one(spans, a.pid, "SERVER").get("parent_span_id")
        # C saw the header B's client sent: B's client span, in the same trace.
        assert body.strip() == f"traceparent=00-{b_cli['trace_id']}-{b_cli['span_id']}-01"

        # 2. An external caller's traceparent is continued.
        body, t0, t1 = get(a.url + "/chain", {
            "traceparent": f"00-{EXTERNAL_TRACE}-{EXTERNAL_PARENT}-01"})
        spans = trace_of(receiver.spans(wait_for=10, timeout=15), EXTERNAL_TRACE)
        check_chain(spans, a, b, c, (t0, t1))
        a_srv = one(spans, a.pid, "SERVER")
        assert a_srv["parent_span_id"] == EXTERNAL_PARENT
        assert a_srv["remote_parent"]

        # 3. B calls C from a goroutine with context.Background(): lineage keeps the trace.
        body, t0, t1 = get(a.url + "/chain?next=detached")
        spans = receiver.spans(wait_for=15, timeout=15)
        latest = {s["trace_id"] for s in spans} - traces - {EXTERNAL_TRACE}
        assert len(latest) == 1, spans
        check_chain(trace_of(spans, latest.pop()), a, b, c, (t0, t1))
        assert gotel.stop() == 0, gotel.log


def test_unsampled_traces_propagate_but_are_not_exported(servers, gotels):
    binary = build_app("httpserver")
    with Receiver() as receiver:
        gotel = Gotel("attach", "--exe", str(binary),
                      env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
                           "OTEL_TRACES_SAMPLER": "parentbased_always_on"})
        gotels.append(gotel)
        gotel.wait_for("watching for processes")
        a, b, c = start_chain(binary, servers)
        for s in (a, b, c):
            gotel.wait_for(rf"pid {s.pid} .*attached 2/2")
        # The caller decided not to sample: nobody exports, the flag travels on.
        unsampled = {"traceparent": f"00-{EXTERNAL_TRACE}-{EXTERNAL_PARENT}-00"}
        body, _, _ = get(a.url + "/chain", unsampled)
        assert body.startswith(f"traceparent=00-{EXTERNAL_TRACE}-") and body.strip().endswith("-00")
        get(a.url + "/hello/sampled")
        spans = receiver.spans(wait_for=1, timeout=10)
        time.sleep(1)
        spans = receiver.spans(wait_for=0, timeout=0)
        assert [s["attributes"]["url.path"] for s in spans] == ["/hello/sampled"]
        assert gotel.stop() == 0
