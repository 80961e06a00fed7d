"""kafka-go instrumentation: hooks, fields, and the spans of its events.

Trace context crosses Kafka without writing into the target: a consumer span's remote
context is the message's `traceparent` header when a producer's SDK put one there, else the
producer span gotel recorded under the message's identity in a map every process gotel
instruments shares (include/message_context.h). It becomes the span's parent, or a link when
the consume call already had a parent in its own process (which it keeps).
"""

from __future__ import annotations

from gotel.instrumentation.common import CONTEXT_FIELDS, GOROUTINE_FIELDS
from gotel.instrumentation.events import truncated
from gotel.instrumentation.kafkago.semconv import (
    OTHER,
    RECEIVE,
    SEND,
    SYSTEM,
    message_key,
    span_name,
)
from gotel.instrumentation.probe import Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData, SpanKind

MODULE = "github.com/segmentio/kafka-go"
SCOPE = "gotel/github.com/segmentio/kafka-go"
MESSAGE = f"{MODULE}.Message"

# Values of the enums in events.h (tests check them against the object's BTF).
WRITE = 0  # KAFKA_WRITE
CONTEXT_SOURCES = {1: "header", 2: "producer"}  # KAFKA_CONTEXT_HEADER, _PRODUCER

IDENTITY_FIELDS = (
    StructField(MESSAGE, "Topic", "off_message_topic", MODULE),
    StructField(MESSAGE, "Key", "off_message_key", MODULE),
    StructField(MESSAGE, "Value", "off_message_value", MODULE),
)

CORRELATION_RULE = (
    "one trace when one gotel instruments producer and consumer (both pids, --exe, or a "
    "node agent): the producer span's context is recorded under each message's identity "
    "(topic, key, first 128 value bytes, lengths; up to 16 messages a call), identical "
    "messages share the last one's"
)


def _common(event: Event, operation: str) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
    if event["topic"]:
        attrs["messaging.destination.name"] = event["topic"]
    key = message_key(event["key"])
    if key is not None:
        attrs["messaging.kafka.message.key"] = key
        if truncated(event, "key"):
            attrs["gotel.truncated"] = "messaging.kafka.message.key"
    if event["error_type"]:
        attrs["error.type"] = OTHER
    return attrs


def producer_span(event: Event) -> SpanData:
    attrs = _common(event, SEND)
    if event["message_count"] > 1:
        attrs["messaging.batch.message_count"] = event["message_count"]
    return SpanData(span_name(SEND, event["topic"]), SpanKind.PRODUCER, attrs,
                    bool(event["error_type"]))


def consumer_span(event: Event) -> SpanData:
    attrs = _common(event, RECEIVE)
    if event["partition"] >= 0:
        attrs["messaging.destination.partition.id"] = str(event["partition"])
    if event["offset"] >= 0:
        attrs["messaging.kafka.offset"] = event["offset"]
    if event["group"]:
        attrs["messaging.consumer.group.name"] = event["group"]
    source = CONTEXT_SOURCES.get(event["context_source"])
    if source is not None:
        attrs["gotel.messaging.context"] = source
    return SpanData(span_name(RECEIVE, event["topic"]), SpanKind.CONSUMER, attrs,
                    bool(event["error_type"]))


PRODUCER = Probe(
    name="kafka-go producer",
    module=MODULE,
    bpf_object=object_path(__file__, "producer.bpf.o"),
    hooks=(
        Hook(f"{MODULE}.(*Writer).WriteMessages", entry="write_messages_entry",
             returns="write_messages_return"),
    ),
    fields=(
        *GOROUTINE_FIELDS,
        *CONTEXT_FIELDS,
        *IDENTITY_FIELDS,
        StructField(MESSAGE, "Time", "off_message_time", MODULE),
        StructField(f"{MODULE}.Writer", "Topic", "off_writer_topic", MODULE),
    ),
    event="kafka_event",
    describe=producer_span,
    scope=SCOPE,
    context_out=(
        "no traceparent header: inserting one means rewriting a Kafka record batch in "
        "flight (varint lengths, CRC32C, compression); instead " + CORRELATION_RULE
    ),
)

CONSUMER = Probe(
    name="kafka-go consumer",
    module=MODULE,
    bpf_object=object_path(__file__, "consumer.bpf.o"),
    hooks=(
        Hook(f"{MODULE}.(*Reader).FetchMessage", entry="fetch_message_entry",
             returns="fetch_message_return"),
    ),
    fields=(
        *GOROUTINE_FIELDS,
        *CONTEXT_FIELDS,
        *IDENTITY_FIELDS,
        StructField(MESSAGE, "Partition", "off_message_partition", MODULE),
        StructField(MESSAGE, "Offset", "off_message_offset", MODULE),
        StructField(MESSAGE, "Headers", "off_message_headers", MODULE, required=False),
        StructField(f"{MODULE}.Reader", "config", "off_reader_config", MODULE, required=False),
        StructField(f"{MODULE}.ReaderConfig", "GroupID", "off_reader_config_group_id", MODULE,
                    required=False),
        StructField(f"{MODULE}/protocol.Header", "Key", "off_header_key", MODULE,
                    required=False),
        StructField(f"{MODULE}/protocol.Header", "Value", "off_header_value", MODULE,
                    required=False),
    ),
    event="kafka_event",
    describe=consumer_span,
    scope=SCOPE,
    context_in=(
        "parent: the message's traceparent header (read-only), else the producer span, "
        + CORRELATION_RULE + "; a link instead when the call already has a parent in its "
        "process; none when gotel did not see the producer (another agent, a producer "
        "without an SDK header)"
    ),
)

PROBES = (PRODUCER, CONSUMER)
