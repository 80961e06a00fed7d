"""A collector that goes away and comes back: gotel keeps its spans, retries, and says so."""

from __future__ import annotations

import re
import time

import pytest

from conftest import GoServer, Gotel, free_port, get
from gotools import build_app
from otlp_receiver import Receiver

pytestmark = pytest.mark.usefixtures("require_root")


def _hello(server: GoServer, count: int, tag: str) -> None:
    for i in range(count):
        assert get(f"{server.url}/hello/{tag}{i}") == 200


def _paths(receiver: Receiver) -> list[str]:
    return [s["attributes"]["url.path"] for s in receiver.read()]


def test_spans_made_while_the_collector_is_down_arrive_when_it_is_back(
    tmp_path, servers, gotels
):
    port = free_port()
    out = tmp_path / "spans.jsonl"
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    receiver = Receiver(out, http_port=port).__enter__()
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
               "OTEL_EXPORTER_OTLP_TIMEOUT": "500", "OTEL_BSP_SCHEDULE_DELAY": "200"}
        gotel = Gotel("attach", "--pid", str(server.pid), "--exporter", "otlp", env=env)
        gotels.append(gotel)
        gotel.wait_for(r"attached \d+/\d+ probes")
        _hello(server, 50, "before")
        receiver.spans(wait_for=50)
    finally:
        receiver.__exit__(None, None, None)  # the collector goes away

    _hello(server, 200, "during")
    gotel.wait_for(r"export failed \(\d+ span\(s\) kept for retry\)")
    time.sleep(1.0)
    assert gotel.popen.poll() is None, gotel.log  # still running

    with Receiver(out, http_port=port) as back:  # the same address, as a restarted collector
        _hello(server, 50, "after")
        spans = back.spans(wait_for=300, timeout=40)
        assert gotel.stop() == 0
    paths = _paths(back)
    assert len(paths) == len(set(paths)) == 300  # every span once: none lost, none twice
    assert {p.split("/")[2].rstrip("0123456789") for p in paths} == {"before", "during", "after"}
    assert len(spans) == 300
    log = gotel.log
    assert re.search(r"export recovered after \d+ failed attempt\(s\), 0 span\(s\) lost", log), log
    assert re.search(r"spans: 300 exported(;|$)", log), log
    assert "Traceback" not in log


def test_spans_the_queue_cannot_hold_are_counted_and_reported(tmp_path, servers, gotels):
    port = free_port()  # nobody listens: the collector is down throughout
    server = GoServer(build_app("httpserver"))
    servers.append(server)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "300", "OTEL_BSP_MAX_QUEUE_SIZE": "100",
           "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"}
    gotel = Gotel("attach", "--pid", str(server.pid), "--exporter", "otlp", env=env)
    gotels.append(gotel)
    gotel.wait_for(r"attached \d+/\d+ probes")
    _hello(server, 400, "x")
    gotel.wait_for(r"export queue full \(\d+ spans")
    assert gotel.stop(timeout=60) == 0
    log = gotel.log
    m = re.search(r"spans: (\d+) exported, (\d+) dropped \(([^)]*)\)", log)
    assert m, log
    exported, dropped = int(m.group(1)), int(m.group(2))
    assert exported == 0 and dropped == 400, log  # nothing reached a collector; all counted
    reasons = dict(
        (name.strip(), int(count))
        for name, count in (item.rsplit(" ", 1) for item in m.group(3).split(","))
    )
    assert reasons["queue full"] >= 400 - 100 - 80  # more than the queue and a request hold
    assert sum(reasons.values()) == 400
    summary = r"pid \d+: detached in \d+ ms; 400 spans from 400 events, 0 events lost"
    assert re.search(summary, log), log
