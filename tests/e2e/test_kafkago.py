"""kafka-go producer and consumer spans, end to end: tests/apps/kafkaapp, a real Kafka 4 broker
(KRaft), real BPF, one gotel for three processes.

The producer service's HTTP handler writes messages; two consumer processes read them, one
with ReadMessage in a consumer group, one with FetchMessage on the partition. The request's
SERVER span, its PRODUCER span and every CONSUMER span of its messages must be one trace,
the consumer spans children of the producer span. Built against two kafka-go releases,
stripped (offsets from gotel's database) and not (DWARF).
"""

from __future__ import annotations

import queue
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GoServer, Gotel, read_jsonl
from gotel.goelf import open_binary
from gotel.instrumentation.kafkago import probe
from gotel.planning import plan_probe
from gotools import build_app, build_app_against
from kafka_broker import KafkaBroker

pytestmark = pytest.mark.usefixtures("require_root")

MODULE = probe.MODULE
PINNED = "v0.4.51"  # tests/apps/kafkaapp/go.mod
OLDER = "v0.4.44"  # the oldest release in the offsets database
GROUP = "billing"
# A producer's SDK would have put this header: the consumer must adopt it.
SDK_TRACE = "0af7651916cd43dd8448eb211c80319c"
SDK_SPAN = "b7ad6b7169203331"
SDK_TRACEPARENT = f"00-{SDK_TRACE}-{SDK_SPAN}-01"


def build_kafkaapp(version: str, *, stripped: bool = False) -> Path:
    if version == PINNED:
        return build_app("kafkaapp", stripped=stripped)
    return build_app_against("kafkaapp", MODULE, version, stripped=stripped)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One broker for every test of this module (a JVM start is seconds on a shared host)."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


class Consumer:
    """A consumer process; its "consumed P O KEY VALUE" lines arrive on `lines`."""

    def __init__(self, binary: Path, *args: str) -> None:
        self.popen = subprocess.Popen([str(binary), "-role", "consumer", *args],
                                      stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line(60) == "consuming"

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.strip())

    @property
    def pid(self) -> int:
        return self.popen.pid

    def next_line(self, timeout: float = 30) -> str:
        return self.lines.get(timeout=timeout)

    def values(self, n: int) -> list[str]:
        return [self.next_line().split(" ", 4)[-1] for _ in range(n)]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=10)


def post(url: str, body: str) -> str:
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def by_query(spans: list[dict], query: str) -> dict:
    [server] = [s for s in spans if s["kind"] == "SERVER"
                and s["attributes"].get("url.query") == query]
    return server


def children(spans: list[dict], parent: dict, kind: str) -> list[dict]:
    return sorted((s for s in spans if s["parent_span_id"] == parent["span_id"]
                   and s["kind"] == kind), key=lambda s: s["attributes"].get(
                       "messaging.kafka.offset", 0))


def check_consumers(spans: list[dict], producer: dict, topic: str, keys: list[str | None],
                    pid_read: int, pid_fetch: int) -> None:
    """Each message: one CONSUMER span per consumer process, children of the PRODUCER span."""
    consumers = children(spans, producer, "CONSUMER")
    assert len(consumers) == 2 * len(keys), consumers
    by_pid = {pid_read: [], pid_fetch: []}
    for span in consumers:
        by_pid[span["resource"]["process.pid"]].append(span)
    for pid, group in ((pid_read, GROUP), (pid_fetch, None)):
        assert len(by_pid[pid]) == len(keys), (pid, by_pid)
        for span, key in zip(by_pid[pid], keys, strict=True):
            attrs = span["attributes"]
            assert span["trace_id"] == producer["trace_id"]
            assert span["name"] == f"receive {topic}"
            assert attrs["messaging.system"] == "kafka"
            assert attrs["messaging.operation.type"] == "receive"
            assert attrs["messaging.destination.name"] == topic
            assert attrs["messaging.destination.partition.id"] == "0"
            assert attrs["messaging.kafka.offset"] >= 0
            assert attrs.get("messaging.kafka.message.key") == key
            assert attrs.get("messaging.consumer.group.name") == group
            assert attrs["gotel.messaging.context"] == "producer"


@pytest.mark.parametrize(("version", "stripped"), [
    (PINNED, False), (PINNED, True), (OLDER, False), (OLDER, True),
])
def test_request_producer_and_consumers_are_one_trace(
        version, stripped, kafka, tmp_path, servers, gotels):
    binary = build_kafkaapp(version, stripped=stripped)
    with open_binary(binary) as b:
        assert b.has_dwarf != stripped
        assert b.modules[MODULE] == version
    topic = f"orders-{version.replace('.', '-')}-{'s' if stripped else 'd'}"
    reader = Consumer(binary, "-broker", kafka.bootstrap, "-topic", topic, "-group", GROUP)
    fetcher = Consumer(binary, "-broker", kafka.bootstrap, "-topic", topic, "-read", "fetch")
    try:
        app = GoServer(binary, "-role", "producer", "-broker", kafka.bootstrap)
        servers.append(app)
        out = tmp_path / "spans.jsonl"
        gotel = Gotel("attach", "--pid", str(app.pid), "--pid", str(reader.pid),
                      "--pid", str(fetcher.pid), "--exporter", "jsonl", "--output", str(out))
        gotels.append(gotel)
        for pid in (app.pid, reader.pid, fetcher.pid):
            line = gotel.wait_for(rf"pid {pid} .*attached.*").group(0)
            assert "kafka-go" not in line.partition("skipped")[2], line
        # The consumers' calls waiting since before the attach have no entry probe: the first
        # message ends them; the calls after it are traced.
        post(f"{app.url}/produce?topic={topic}", "warm-up")
        assert reader.values(1) == fetcher.values(1) == ["warm-up"]

        queries = [f"topic={topic}&key=user-1", f"topic={topic}&key=user-2&n=3",
                   f"topic={topic}&per_message=1",
                   f"topic={topic}&traceparent={SDK_TRACEPARENT}",
                   f"topic={topic}&key=user-4&compress=1"]
        # Distinct values: identical messages would share one identity (the last producer's).
        for i, query in enumerate(queries):
            post(f"{app.url}/produce?{query}", f"order-{i}")
        values = ["order-0", "order-1#0", "order-1#1", "order-1#2", "order-2", "order-3",
                  "order-4"]
        assert reader.values(len(values)) == values
        assert fetcher.values(len(values)) == values

        # A fetch inside a request of its own: that request's span stays its parent, the
        # producer span becomes its link.
        local_topic = f"{topic}-local"
        post(f"{app.url}/produce?topic={local_topic}&key=local&create=1", "order-local")
        with urllib.request.urlopen(f"{app.url}/consume?topic={local_topic}", timeout=30) as r:
            assert r.read() == b"order-local"

        # warm-up: 1 server + 1 producer + 2 consumers (untraced: none); then per query;
        # then /produce (2) and /consume (2).
        want = 2 + len(queries) * 2 + 2 * len(values) + 4
        spans = read_jsonl(out, want, timeout=30)
        assert gotel.stop() == 0, gotel.log
        spans = read_jsonl(out, want)
    finally:
        reader.stop()
        fetcher.stop()

    # One message: SERVER -> PRODUCER -> a CONSUMER span in each consumer process.
    server = by_query(spans, queries[0])
    [producer] = children(spans, server, "PRODUCER")
    attrs = producer["attributes"]
    assert producer["trace_id"] == server["trace_id"]
    assert producer["name"] == f"send {topic}"
    assert producer["resource"]["process.pid"] == app.pid
    assert attrs == {"messaging.system": "kafka", "messaging.operation.type": "send",
                     "messaging.operation.name": "send", "messaging.destination.name": topic,
                     "messaging.kafka.message.key": "user-1"}
    assert server["start_time_unix_nano"] <= producer["start_time_unix_nano"]
    assert producer["end_time_unix_nano"] <= server["end_time_unix_nano"]
    check_consumers(spans, producer, topic, ["user-1"], reader.pid, fetcher.pid)

    # Three messages in one call: one PRODUCER span with the batch's count, no key.
    server = by_query(spans, queries[1])
    [producer] = children(spans, server, "PRODUCER")
    assert producer["attributes"]["messaging.batch.message_count"] == 3
    assert "messaging.kafka.message.key" not in producer["attributes"]
    check_consumers(spans, producer, topic, ["user-2"] * 3, reader.pid, fetcher.pid)

    # The topic named by the message instead of the Writer.
    server = by_query(spans, queries[2])
    [producer] = children(spans, server, "PRODUCER")
    assert producer["attributes"]["messaging.destination.name"] == topic
    check_consumers(spans, producer, topic, [None], reader.pid, fetcher.pid)

    # A traceparent header already in the message wins: the consumers join that trace.
    server = by_query(spans, queries[3])
    [producer] = children(spans, server, "PRODUCER")
    adopted = [s for s in spans if s["kind"] == "CONSUMER" and s["trace_id"] == SDK_TRACE]
    assert len(adopted) == 2, adopted
    for span in adopted:
        assert span["parent_span_id"] == SDK_SPAN
        assert span["attributes"]["gotel.messaging.context"] == "header"
    assert not children(spans, producer, "CONSUMER")

    # An lz4-compressed batch: the consumer sees the same message, so the same identity.
    server = by_query(spans, queries[4])
    [producer] = children(spans, server, "PRODUCER")
    check_consumers(spans, producer, topic, ["user-4"], reader.pid, fetcher.pid)

    # The fetch with a parent in its process: child of /consume's span, linked to the producer.
    local_query = f"topic={local_topic}&key=local&create=1"
    [producer] = children(spans, by_query(spans, local_query), "PRODUCER")
    server = by_query(spans, f"topic={local_topic}")
    [consumer] = children(spans, server, "CONSUMER")
    assert consumer["trace_id"] == server["trace_id"] != producer["trace_id"]
    assert consumer["links"] == [{"trace_id": producer["trace_id"],
                                  "span_id": producer["span_id"]}]
    assert consumer["attributes"]["gotel.messaging.context"] == "producer"
    assert consumer["attributes"]["messaging.kafka.message.key"] == "local"
    assert "messaging.consumer.group.name" not in consumer["attributes"]


@pytest.mark.parametrize("version", [PINNED, OLDER])
def test_stripped_binaries_get_the_dwarf_offsets_from_the_database(version):
    for kafka_probe in probe.PROBES:
        with open_binary(build_kafkaapp(version)) as b:
            full = plan_probe(b, kafka_probe)
        with open_binary(build_kafkaapp(version, stripped=True)) as b:
            stripped = plan_probe(b, kafka_probe)
        assert full.applies and stripped.applies, (full.skip_reason, stripped.skip_reason)
        fields = [f.key for f in kafka_probe.fields if f.module == MODULE]
        assert {stripped.fields[k].source for k in fields} == {"database"}
        assert {full.fields[k].source for k in fields} == {"dwarf"}
        assert stripped.constants == full.constants
