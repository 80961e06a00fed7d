"""go-redis v9 client instrumentation: hooks, fields, and the spans of its events."""

from __future__ import annotations

from gotel.instrumentation.common import CONTEXT_FIELDS, GOROUTINE_FIELDS
from gotel.instrumentation.decode import split_host_port
from gotel.instrumentation.goredis.semconv import (
    SYSTEM,
    batch_operation,
    batch_query_text,
    command_name,
    error_class,
    query_text,
)
from gotel.instrumentation.metric import DB_DURATION_BOUNDS, Metric, RedKey, key_text
from gotel.instrumentation.probe import Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData, SpanKind

MODULE = "github.com/redis/go-redis/v9"
SCOPE = "gotel/github.com/redis/go-redis/v9"

# Values of the enum and sizes in events.h (tests check them against the object's BTF).
COMMAND = 0  # REDIS_COMMAND
PIPELINE = 1  # REDIS_PIPELINE
TRANSACTION = 2  # REDIS_TRANSACTION
NAME_SIZE = 24  # REDIS_NAME_SIZE
BATCH_NAMES = 8  # REDIS_BATCH_NAMES

_BATCH_PREFIX = {PIPELINE: "PIPELINE", TRANSACTION: "MULTI"}

FIELDS = (
    *GOROUTINE_FIELDS,
    *CONTEXT_FIELDS,
    StructField(f"{MODULE}.baseClient", "opt", "off_base_client_opt", MODULE),
    StructField(f"{MODULE}.Options", "Network", "off_options_network", MODULE),
    StructField(f"{MODULE}.Options", "Addr", "off_options_addr", MODULE),
    StructField(f"{MODULE}.Options", "DB", "off_options_db", MODULE),
    StructField(f"{MODULE}.baseCmd", "args", "off_base_cmd_args", MODULE),
)


def _commands(event: Event) -> list[tuple[str, int]]:
    """(operation name, argument count) of each command the event describes."""
    names, lens, argcs = event["names"], event["name_lens"], event["argcs"]
    count = 1 if event["kind"] == COMMAND else min(event["batch_size"], BATCH_NAMES)
    out = []
    for i in range(count):
        length = lens[i]
        raw = names[i * NAME_SIZE : i * NAME_SIZE + min(length, NAME_SIZE)]
        name = command_name(raw.decode("ascii", "replace")) if length <= NAME_SIZE else ""
        out.append((name, argcs[i]))
    return out


def client_span(event: Event) -> SpanData:
    attrs: dict[str, str | int] = {"db.system.name": SYSTEM}
    commands = _commands(event)
    prefix = _BATCH_PREFIX.get(event["kind"])
    if prefix is None:
        name, argc = commands[0]
        operation = name
        query = query_text(name, argc) if name else ""
    else:
        size = event["batch_size"]
        complete = size <= BATCH_NAMES
        operation = batch_operation(prefix, [n for n, _ in commands], complete)
        if size != 1:  # a batch of one is one operation (semconv: no batch size)
            attrs["db.operation.batch.size"] = size
        query = ""
        if commands and all(n for n, _ in commands):
            query = batch_query_text([query_text(n, argc) for n, argc in commands])
            if not complete:
                attrs["gotel.truncated"] = "db.query.text"
    if operation:
        attrs["db.operation.name"] = operation
    if query:
        attrs["db.query.text"] = query

    addr = event["addr"]
    if event["network"] == "unix":
        if addr:
            attrs["server.address"] = addr
    else:
        host, port = split_host_port(addr)
        if host:
            attrs["server.address"] = host
        if port:
            attrs["server.port"] = port
    # The client's configured index: a SELECT on a Conn is not followed (semconv's fallback).
    attrs["db.namespace"] = str(event["db"])

    error = False
    if event["error_type"]:
        kind = error_class(event["error"], event["error_len"])
        if kind is not None:
            error = True
            attrs["error.type"] = kind
            if kind != "_OTHER":
                attrs["db.response.status_code"] = kind
    return SpanData(operation or SYSTEM, SpanKind.CLIENT, attrs, error)


# red_key.outcome bit (client_metrics.h).
_METRIC_UNIX = 0x100


def metric_attributes(key: RedKey) -> dict[str, object]:
    """db.client.operation.duration's attributes: system, operation (a batch: its kind),
    server address and port, namespace (DB index), error.type (a reply's prefix)."""
    attrs: dict[str, object] = {"db.system.name": SYSTEM}
    kind = key["outcome"] & 0xFF
    operation = _BATCH_PREFIX.get(kind) or command_name(key_text(key["word"]))
    if operation:
        attrs["db.operation.name"] = operation
    addr = key_text(key["address"])
    if key["outcome"] & _METRIC_UNIX:
        if addr:
            attrs["server.address"] = addr
    else:
        host, port = split_host_port(addr)
        if host:
            attrs["server.address"] = host
        if port:
            attrs["server.port"] = port
    attrs["db.namespace"] = str(key["code"])
    if key["port"]:  # an error: its head (16 bytes) tells redis.Nil and a reply's prefix
        head = key_text(key["name"])
        error = error_class(head, len(head))
        if error is not None:
            attrs["error.type"] = error
            if error != "_OTHER":
                attrs["db.response.status_code"] = error
    return attrs


METRIC = Metric(
    "db.client.operation.duration",
    "Duration of database client operations.",
    metric_attributes,
    DB_DURATION_BOUNDS,
)


CLIENT = Probe(
    name="go-redis client",
    module=MODULE,
    bpf_object=object_path(__file__, "client.bpf.o"),
    hooks=(
        Hook(f"{MODULE}.(*baseClient).process", entry="process_entry", returns="call_return"),
        Hook(
            f"{MODULE}.(*baseClient).processPipeline",
            entry="pipeline_entry",
            returns="call_return",
            optional=True,  # commands are traced without it
        ),
        Hook(
            f"{MODULE}.(*baseClient).processTxPipeline",
            entry="tx_pipeline_entry",
            returns="call_return",
            optional=True,
        ),
    ),
    fields=FIELDS,
    event="redis_event",
    describe=client_span,
    scope=SCOPE,
    context_out="none (RESP has no header to carry a traceparent)",
    metric=METRIC,
)

PROBES = (CLIENT,)
