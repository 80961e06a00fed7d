"""gRPC server and client spans, end to end: greeter processes, real BPF, a real OTLP receiver.

Two processes of tests/apps/grpcgreeter run under one `gotel attach --exe`: a front that
serves HTTP and makes gRPC calls from its handler, and a backend gRPC server. Every
case is one HTTP request to the front; its spans are told apart by time window.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SLACK, GoServer, Gotel, inside
from gotel.goelf import open_binary
from gotel.instrumentation.grpc import probe
from gotel.planning import plan_probes
from gotools import APPS, build_app, build_app_against
from otlp_receiver import Receiver

pytestmark = pytest.mark.usefixtures("require_root")

GRPC = "google.golang.org/grpc"
APP = APPS / "grpcgreeter"
# Older releases across each layout change the probes handle: operateHeaders' frame
# argument (1.60), ServerStream{*Stream} (1.69), ServerStream{Stream} (1.77).
OLDER = ("v1.59.0", "v1.68.2", "v1.76.0")
EXTERNAL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
EXTERNAL_PARENT = "00f067aa0ba902b7"
GAP = 0.05  # s between calls


def build_greeter(version: str | None) -> Path:
    """The greeter against its pinned grpc (None) or another release (a patched copy)."""
    if version is None:
        return build_app("grpcgreeter")
    return build_app_against("grpcgreeter", GRPC, version)


@dataclass
class Greeter:
    server: GoServer
    http: str = ""  # base URL of the /call endpoint, when started with one

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def address(self) -> str:
        return self.server.address


def start(binary: Path, servers: list[GoServer], *, http: bool = False) -> Greeter:
    server = GoServer(binary, *(("-http", "127.0.0.1:0") if http else ()))
    servers.append(server)
    greeter = Greeter(server)
    if http:
        assert server.popen.stdout is not None
        line = server.popen.stdout.readline().strip()
        assert line.startswith("http on "), line
        greeter.http = "http://" + line.removeprefix("http on ")
    return greeter


@dataclass
class Call:
    body: str
    start: int
    end: int

    def spans(self, spans: list[dict]) -> list[dict]:
        """The spans that began and ended within this call."""
        return [s for s in spans if self.start - SLACK <= s["start_time_unix_nano"]
                and s["end_time_unix_nano"] <= self.end + SLACK]


def call(front: Greeter, **params: str) -> Call:
    url = f"{front.http}/call?{urllib.parse.urlencode(params)}"
    start = time.time_ns()
    with urllib.request.urlopen(url, timeout=15) as response:
        body = response.read().decode().strip()
    end = time.time_ns()
    time.sleep(GAP)  # windows further apart than the clock slack: spans tell them apart
    return Call(body, start, end)


def one(spans: list[dict], pid: int, kind: str) -> dict:
    found = [s for s in spans if s["resource"]["process.pid"] == pid and s["kind"] == kind]
    assert len(found) == 1, [(s["name"], s["kind"], s["resource"]["process.pid"]) for s in spans]
    return found[0]


def check_rpc_attributes(span: dict, service: str, method: str, code: int, port: int) -> None:
    attrs = span["attributes"]
    assert span["name"] == f"{service}/{method}"
    assert attrs["rpc.system"] == "grpc"
    assert attrs["rpc.service"] == service
    assert attrs["rpc.method"] == method
    assert attrs["rpc.grpc.status_code"] == code
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == port


def check_client(span: dict, parent: dict, service: str, method: str, code: int,
                 port: int) -> None:
    """A front client span, child of the front's HTTP server span; Error unless OK."""
    check_rpc_attributes(span, service, method, code, port)
    assert span["parent_span_id"] == parent["span_id"]
    assert span["trace_id"] == parent["trace_id"]
    assert inside(span, parent)
    assert (span["status"]["code"] == "ERROR") == (code != 0)


def check_server(span: dict, client: dict, service: str, method: str, code: int, error: bool,
                 port: int) -> None:
    check_rpc_attributes(span, service, method, code, port)
    attrs = span["attributes"]
    assert attrs["network.peer.address"] == "127.0.0.1"
    assert 0 < attrs["network.peer.port"] < 65536
    assert (span["status"]["code"] == "ERROR") == error
    assert inside(span, client)
    # A sampled root until traceparent goes out in HTTP/2 headers; then the client's child.
    if span.get("parent_span_id"):
        assert span["parent_span_id"] == client["span_id"]
        assert span["trace_id"] == client["trace_id"]


@pytest.mark.parametrize(("version", "frame_arg", "layout"), [
    (None, probe.FRAME_ARG_4, probe.STREAM_EMBED_VALUE),
    ("v1.59.0", probe.FRAME_ARG_2, probe.STREAM_PLAIN),
    ("v1.68.2", probe.FRAME_ARG_4, probe.STREAM_PLAIN),
    ("v1.76.0", probe.FRAME_ARG_4, probe.STREAM_EMBED_PTR),
])
def test_plans_follow_grpc_layouts(version, frame_arg, layout):
    """Each release's DWARF picks its layout; every hook and required field resolves."""
    with open_binary(build_greeter(version)) as binary:
        server, client = plan_probes(binary, probe.PROBES)
    assert server.applies, server.skip_reason
    assert client.applies, client.skip_reason
    assert server.constants["frame_arg"] == frame_arg
    assert server.constants["server_stream_layout"] == layout
    # One of the two trailer types, never both: the status is read through whichever exists.
    assert ("off_header_frame_hf" in server.constants) != (
        "off_server_headers_hf" in server.constants)
    assert {h.hook.symbol for h in client.hooks} == {h.symbol for h in probe.CLIENT.hooks}


@pytest.mark.parametrize("version", [None, *OLDER])
def test_grpc_server_and_client_spans(version, servers, gotels):
    binary = build_greeter(version)
    stopped = start(binary, servers)
    stopped.server.stop()
    with Receiver() as receiver:
        gotel = Gotel("attach", "--exe", str(binary),
                      env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint})
        gotels.append(gotel)
        gotel.wait_for("watching for processes")
        backend = start(binary, servers)
        front = start(binary, servers, http=True)
        for greeter in (backend, front):
            line = gotel.wait_for(rf"pid {greeter.pid} .*attached.*").group(0)
            assert "grpc" not in line.partition("skipped")[2], line
        port = backend.server.port
        target = backend.address

        ok = call(front, rpc="check", target=target)
        adopted = call(front, rpc="check", target=target,
                       traceparent=f"00-{EXTERNAL_TRACE}-{EXTERNAL_PARENT}-01")
        missing = call(front, rpc="missing", target=target)
        invalid = call(front, rpc="check", target=target, service="fail:3")
        unavailable = call(front, rpc="check", target=stopped.address)
        streamed = call(front, rpc="watch", target=target)
        nested_grpc = call(front, rpc="check", target=target, service=f"grpc:{target}")
        nested_http = call(front, rpc="check", target=target, service=f"http:{front.http}/ping")
        assert [c.body.split()[0] for c in (ok, adopted, missing, invalid, unavailable, streamed,
                                             nested_grpc, nested_http)] == [
            "code=0", "code=0", "code=12", "code=3", "code=14", "code=0", "code=0", "code=0"]
        spans = receiver.spans(wait_for=27, timeout=20)
        assert gotel.stop() == 0, gotel.log

    # 1. OK: HTTP server -> gRPC client in the front, a sampled root server span in the backend.
    got = ok.spans(spans)
    assert len(got) == 3, got
    http = one(got, front.pid, "SERVER")
    client = one(got, front.pid, "CLIENT")
    check_client(client, http, "grpc.health.v1.Health", "Check", 0, port)
    server = one(got, backend.pid, "SERVER")
    check_server(server, client, "grpc.health.v1.Health", "Check", 0, False, port)
    assert server["trace_id"] != "0" * 32

    # 2. An incoming traceparent (metadata the client added itself) is adopted.
    got = adopted.spans(spans)
    assert len(got) == 3, got
    client = one(got, front.pid, "CLIENT")
    check_client(client, one(got, front.pid, "SERVER"), "grpc.health.v1.Health", "Check", 0,
                 port)
    server = one(got, backend.pid, "SERVER")
    assert server["trace_id"] == EXTERNAL_TRACE
    assert server["parent_span_id"] == EXTERNAL_PARENT
    assert server["remote_parent"]
    check_rpc_attributes(server, "grpc.health.v1.Health", "Check", 0, port)

    # 3. A method nobody serves: Unimplemented, an Error on both sides.
    got = missing.spans(spans)
    assert len(got) == 3, got
    client = one(got, front.pid, "CLIENT")
    check_client(client, one(got, front.pid, "SERVER"), "gotel.test.Missing", "Nope", 12, port)
    assert "unknown service gotel.test.Missing" in client["status"]["message"]
    check_server(one(got, backend.pid, "SERVER"), client, "gotel.test.Missing", "Nope", 12,
                 True, port)

    # 4. InvalidArgument: the client's Error, not the server's.
    got = invalid.spans(spans)
    assert len(got) == 3, got
    client = one(got, front.pid, "CLIENT")
    check_client(client, one(got, front.pid, "SERVER"), "grpc.health.v1.Health", "Check", 3,
                 port)
    assert client["status"]["message"] == "failed as asked (3)"
    check_server(one(got, backend.pid, "SERVER"), client, "grpc.health.v1.Health", "Check", 3,
                 False, port)

    # 5. Nobody listens: Unavailable, and no server span.
    got = unavailable.spans(spans)
    assert len(got) == 2, got
    client = one(got, front.pid, "CLIENT")
    check_client(client, one(got, front.pid, "SERVER"), "grpc.health.v1.Health", "Check", 14,
                 stopped.server.port)
    assert "connection refused" in client["status"]["message"]

    # 6. Server streaming: the client span lasts until the stream ends (three 5 ms sends).
    got = streamed.spans(spans)
    assert len(got) == 3, got
    client = one(got, front.pid, "CLIENT")
    check_client(client, one(got, front.pid, "SERVER"), "grpc.health.v1.Health", "Watch", 0,
                 port)
    server = one(got, backend.pid, "SERVER")
    check_server(server, client, "grpc.health.v1.Health", "Watch", 0, False, port)
    assert server["duration_ns"] >= 10_000_000
    assert client["duration_ns"] >= server["duration_ns"] - SLACK

    # 7. The handler's own gRPC call is a child of the server span that runs it.
    got = nested_grpc.spans(spans)
    assert len(got) == 5, got
    servers_ = [s for s in got if s["resource"]["process.pid"] == backend.pid
                and s["kind"] == "SERVER"]
    assert len(servers_) == 2
    outer = max(servers_, key=lambda s: s["duration_ns"])
    inner = min(servers_, key=lambda s: s["duration_ns"])
    inner_client = one(got, backend.pid, "CLIENT")
    assert inner_client["parent_span_id"] == outer["span_id"]
    assert inner_client["trace_id"] == outer["trace_id"]
    assert inside(inner_client, outer)
    check_rpc_attributes(inner_client, "grpc.health.v1.Health", "Check", 0, port)
    check_server(inner, inner_client, "grpc.health.v1.Health", "Check", 0, False, port)

    # 8. ... and so is its HTTP call.
    got = nested_http.spans(spans)
    assert len(got) == 5, got
    server = one(got, backend.pid, "SERVER")
    http_client = one(got, backend.pid, "CLIENT")
    assert http_client["name"] == "GET"
    assert http_client["parent_span_id"] == server["span_id"]
    assert http_client["trace_id"] == server["trace_id"]
    assert inside(http_client, server)
    ping = [s for s in got if s["resource"]["process.pid"] == front.pid
            and s["attributes"].get("url.path") == "/ping"]
    assert len(ping) == 1

