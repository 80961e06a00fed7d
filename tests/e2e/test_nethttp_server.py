"""net/http server spans, end to end: real server, real BPF, real OTLP receiver."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import pytest

from conftest import GoServer, Gotel
from gotel.goelf import open_binary
from gotel.instrumentation.nethttp.probe import SERVER
from gotel.planning import plan_probe
from gotools import build_app
from otlp_receiver import Receiver

pytestmark = pytest.mark.usefixtures("require_root")

LONG_PATH = "/long/" + "x" * 300


def request(server: GoServer, method: str, path: str, body: bytes | None = None) -> dict:
    """One request on a fresh connection; returns what the client saw (incl. its port)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    start = time.time_ns()
    conn.request(method, path, body=body)
    local_port = conn.sock.getsockname()[1]
    response = conn.getresponse()
    response.read()
    end = time.time_ns()
    conn.close()
    return {"method": method, "path": path, "status": response.status, "port": local_port,
            "start": start, "end": end}


CASES = [
    # method, path, expected status, expected route (None: no route)
    ("GET", "/hello/gopher", 200, "/hello/{id}"),
    ("POST", "/items", 201, "/items"),
    ("GET", "/fail", 500, "/fail"),
    ("GET", "/no/such/page", 404, None),
    ("GET", "/slow?ms=30", 200, "/slow"),
    ("GET", LONG_PATH, 404, None),
    ("PURGE", "/hello/x", 405, None),
]


def probed_addresses(binary: Path) -> list[tuple[int, int]]:
    """(vaddr, file offset) of every instruction the server probe puts a uprobe on."""
    with open_binary(binary) as b:
        plan = plan_probe(b, SERVER)
    assert plan.applies, plan.skip_reason
    out = []
    for hp in plan.hooks:
        fn = hp.function
        out.append((fn.address, fn.file_offset))
        out += [(fn.address + off - fn.file_offset, off) for off in hp.return_offsets]
    return out


def memory_bytes(pid: int, addresses: list[tuple[int, int]]) -> list[int]:
    with open(f"/proc/{pid}/mem", "rb") as mem:
        values = []
        for vaddr, _ in addresses:
            mem.seek(vaddr)
            values.append(mem.read(1)[0])
        return values


def file_bytes(binary: Path, addresses: list[tuple[int, int]]) -> list[int]:
    data = binary.read_bytes()
    return [data[off] for _, off in addresses]


def check_span(span: dict, sent: dict, server: GoServer, route: str | None) -> None:
    attrs = span["attributes"]
    method = sent["method"]
    known = method in {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"}
    if known:
        assert attrs["http.request.method"] == method
        assert span["name"] == (f"{method} {route}" if route else method)
    else:
        assert attrs["http.request.method"] == "_OTHER"
        assert attrs["http.request.method_original"] == method
        assert span["name"] == "HTTP"
    path, _, query = sent["path"].partition("?")
    if len(path) > 256:
        assert attrs["url.path"] == path[:256]
        assert attrs["gotel.truncated"] == "url.path"
    else:
        assert attrs["url.path"] == path
        assert "gotel.truncated" not in attrs
    assert attrs.get("url.query") == (query or None)
    assert attrs["url.scheme"] == "http"
    assert attrs.get("http.route") == route
    assert attrs["http.response.status_code"] == sent["status"]
    assert attrs["server.address"] == server.host
    assert attrs["server.port"] == server.port
    assert attrs["network.peer.address"] == "127.0.0.1"
    assert attrs["client.address"] == "127.0.0.1"
    assert attrs["network.peer.port"] == sent["port"]
    assert attrs["network.protocol.version"] == "1.1"
    assert span["kind"] == "SERVER"
    if sent["status"] >= 500:
        assert span["status"]["code"] == "ERROR"
        assert attrs["error.type"] == str(sent["status"])
    else:
        assert span["status"]["code"] != "ERROR"
        assert "error.type" not in attrs
    # The server's span lies inside the client's window (2 ms for clock conversion).
    slack = 2_000_000
    assert sent["start"] - slack <= span["start_time_unix_nano"]
    assert span["end_time_unix_nano"] <= sent["end"] + slack
    assert span["end_time_unix_nano"] > span["start_time_unix_nano"]
    assert len(span["trace_id"]) == 32 and int(span["trace_id"], 16) != 0
    assert not span.get("parent_span_id")


def test_server_spans_over_otlp_http_then_clean_detach(servers, gotels):
    binary = build_app("httpserver")
    server = GoServer(binary)
    servers.append(server)
    addresses = probed_addresses(binary)
    assert memory_bytes(server.pid, addresses) == file_bytes(binary, addresses)

    with Receiver() as receiver:
        gotel = Gotel(
            "attach", "--pid", str(server.pid),
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
                 "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        )
        gotels.append(gotel)
        gotel.wait_for(rf"pid {server.pid} .*attached \d+/\d+ probes")
        # While attached, every probed instruction is a breakpoint in the target.
        assert set(memory_bytes(server.pid, addresses)) == {0xCC}

        sent = [request(server, m, p, b"{}" if m == "POST" else None) for m, p, _, _ in CASES]
        assert [s["status"] for s in sent] == [c[2] for c in CASES]
        spans = receiver.spans(wait_for=len(CASES), timeout=15)
        assert len(spans) == len(CASES), gotel.log

        by_port = {s["attributes"]["network.peer.port"]: s for s in spans}
        assert len(by_port) == len(CASES)
        for (_, _, _, route), s in zip(CASES, sent, strict=True):
            check_span(by_port[s["port"]], s, server, route)
        assert len({s["span_id"] for s in spans}) == len(spans)
        assert len({s["trace_id"] for s in spans}) == len(spans)
        slow = by_port[sent[4]["port"]]
        assert slow["end_time_unix_nano"] - slow["start_time_unix_nano"] >= 30_000_000

        resource = spans[0]["resource"]
        assert resource["service.name"] == binary.name
        assert resource["process.pid"] == server.pid
        assert resource["process.runtime.name"] == "go"
        assert resource["telemetry.distro.name"] == "gotel"
        assert spans[0]["transport"] == "http"

        assert gotel.stop() == 0, gotel.log
        # Detached: the target runs on, its code as it was on disk.
        assert request(server, "GET", "/hello/after")["status"] == 200
        assert memory_bytes(server.pid, addresses) == file_bytes(binary, addresses)
        time.sleep(0.5)
        assert len(receiver.spans(wait_for=0, timeout=0)) == len(CASES)


def test_server_spans_over_otlp_grpc(servers, gotels):
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    with Receiver() as receiver:
        gotel = Gotel(
            "attach", "--pid", str(server.pid), "--service-name", "checkout",
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint,
                 "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                 "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test"},
        )
        gotels.append(gotel)
        gotel.wait_for(rf"pid {server.pid} .*attached")
        for i in range(20):
            request(server, "GET", f"/hello/{i}")
        spans = receiver.spans(wait_for=20, timeout=15)
        assert len(spans) == 20
        assert {s["transport"] for s in spans} == {"grpc"}
        assert {s["name"] for s in spans} == {"GET /hello/{id}"}
        assert sorted(s["attributes"]["url.path"] for s in spans) == sorted(
            f"/hello/{i}" for i in range(20)
        )
        assert spans[0]["resource"]["service.name"] == "checkout"
        assert spans[0]["resource"]["deployment.environment.name"] == "test"
        assert gotel.stop() == 0
