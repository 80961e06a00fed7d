"""The kafka-go probes as data, and their events -> spans (messaging semantic conventions)."""

from __future__ import annotations

import time

import pytest
from probe_testing import decoder, span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.kafkago import probe
from gotel.instrumentation.kafkago.probe import CONSUMER, PROBES, PRODUCER
from gotel.instrumentation.registry import all_probes
from gotel.offsets import database
from gotel.trace import BootClock, SpanKind

ERROR_ITAB = 0x7F0000001000


def test_python_constants_match_the_objects_enums():
    for kafka_probe in PROBES:
        with BpfObject(kafka_probe.bpf_object) as obj:
            kinds = obj.enum_values("kafka_call_kind")
            sources = obj.enum_values("kafka_context_source")
        assert kinds["KAFKA_WRITE"] == probe.WRITE
        assert {sources["KAFKA_CONTEXT_HEADER"]: "header",
                sources["KAFKA_CONTEXT_PRODUCER"]: "producer"} == probe.CONTEXT_SOURCES


def test_every_constant_and_program_exists_in_the_objects():
    for kafka_probe in PROBES:
        with BpfObject(kafka_probe.bpf_object) as obj:
            programs = set(obj.program_names())
            for hook in kafka_probe.hooks:
                assert {hook.entry, hook.returns} - {None} <= programs
            obj.set_constants({f.const: 0 for f in kafka_probe.fields})
            # Producer and consumer share the cross-process map (the agent's node_* maps).
            assert "node_message_contexts" in obj.map_names()


def test_the_registry_finds_both_probes():
    assert PRODUCER in all_probes() and CONSUMER in all_probes()


def test_the_database_has_every_declared_field_of_recent_releases():
    db = database.load(database.BUNDLED)
    for version in ("v0.4.44", "v0.4.47", "v0.4.51"):
        for kafka_probe in PROBES:
            for f in kafka_probe.fields:
                if f.module == probe.MODULE:
                    found = db.lookup(f.module, version, f.key)
                    assert found.status == database.Status.OFFSET, (version, f.key, found)


def record(obj_probe, **values) -> bytes:
    layout = decoder(obj_probe).layout
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    base = dict(start_ns=now - 1_000_000, end_ns=now, pid=7, trace_flags=1,
                trace_id=bytes(range(16, 32)), span_id=bytes(range(8, 16)),
                parent_span_id=bytes(range(1, 9)), partition=-1, offset=-1)
    base.update(values)
    return layout.encoder()(base)


@pytest.fixture
def clock():
    return BootClock()


def test_a_single_message_send_names_its_topic_and_key(clock):
    span = span_from(PRODUCER, record(PRODUCER, kind=0, message_count=1, topic=b"orders",
                                      topic_len=6, key=b"user-1", key_len=6), clock)
    assert span.kind == SpanKind.PRODUCER and span.name == "send orders"
    assert span.attributes == {
        "messaging.system": "kafka", "messaging.operation.type": "send",
        "messaging.operation.name": "send", "messaging.destination.name": "orders",
        "messaging.kafka.message.key": "user-1"}


def test_a_batch_counts_its_messages_and_an_error_is_marked(clock):
    span = span_from(PRODUCER, record(PRODUCER, kind=0, message_count=5, topic=b"t",
                                      topic_len=1, error_type=ERROR_ITAB), clock)
    assert span.attributes["messaging.batch.message_count"] == 5
    assert span.attributes["error.type"] == "_OTHER" and span.error


def test_a_receive_has_partition_offset_group_and_a_bounded_key(clock):
    key = b"k" * 64
    span = span_from(CONSUMER, record(CONSUMER, kind=1, topic=b"orders", topic_len=6,
                                      partition=3, offset=42, group=b"billing", group_len=7,
                                      key=key, key_len=100, context_source=2,
                                      remote_parent=1), clock)
    assert span.kind == SpanKind.CONSUMER and span.name == "receive orders"
    attrs = span.attributes
    assert attrs["messaging.destination.partition.id"] == "3"
    assert attrs["messaging.kafka.offset"] == 42
    assert attrs["messaging.consumer.group.name"] == "billing"
    assert attrs["messaging.kafka.message.key"] == "k" * 64
    assert attrs["gotel.truncated"] == "messaging.kafka.message.key"
    assert attrs["gotel.messaging.context"] == "producer"
    assert span.remote_parent
