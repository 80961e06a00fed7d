"""go-redis client events -> spans: names, query text without values, batches, errors."""

from __future__ import annotations

import time

import pytest
from probe_testing import span_from

from gotel.ebpf import BpfObject
from gotel.instrumentation.goredis.probe import (
    BATCH_NAMES,
    CLIENT,
    COMMAND,
    NAME_SIZE,
    PIPELINE,
    TRANSACTION,
)
from gotel.instrumentation.goredis.semconv import error_class
from gotel.trace import BootClock, SpanKind

ERROR_ITAB = 0x7F0000001000


@pytest.fixture(scope="module")
def layout():
    assert CLIENT.bpf_object.exists(), "run `make bpf` (scripts/setup.sh) first"
    with BpfObject(CLIENT.bpf_object) as obj:
        yield obj.struct_layout(CLIENT.event)


def event(layout, commands=(("get", 2),), *, kind=COMMAND, batch_size=None, error=None,
          addr="127.0.0.1:6379", network="tcp", db=0):
    """A record as the BPF program writes it; commands are (args[0], len(args)); error: the
    returned error's text (None: no error)."""
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    names = bytearray(BATCH_NAMES * NAME_SIZE)
    lens, argcs = [0] * BATCH_NAMES, [0] * BATCH_NAMES
    for i, (name, argc) in enumerate(commands[:BATCH_NAMES]):
        raw = name.encode()
        names[i * NAME_SIZE : i * NAME_SIZE + min(len(raw), NAME_SIZE)] = raw[:NAME_SIZE]
        lens[i], argcs[i] = len(raw), argc
    values = dict(
        start_ns=now - 1_000_000, end_ns=now, pid=7, trace_flags=1, kind=kind, db=db,
        batch_size=len(commands) if batch_size is None else batch_size,
        error_type=0 if error is None else ERROR_ITAB,
        trace_id=bytes(range(16, 32)), span_id=bytes(range(8, 16)),
        parent_span_id=bytes(range(1, 9)),
        names=bytes(names), name_lens=tuple(lens), argcs=tuple(argcs),
    )
    for name, value in (("addr", addr), ("network", network), ("error", error or "")):
        raw = value.encode()
        values[name] = raw[: layout.fields[name].size]
        values[f"{name}_len"] = len(raw)
    return layout.encoder()(values)


def span(layout, *args, **kwargs):
    return span_from(CLIENT, event(layout, *args, **kwargs), BootClock())


def test_command_span(layout):
    got = span(layout, (("set", 3),), db=2)
    assert got.name == "SET"
    assert got.kind == SpanKind.CLIENT
    assert got.parent_span_id == bytes(range(1, 9))
    assert got.end_ns - got.start_ns == 1_000_000
    assert got.attributes == {
        "db.system.name": "redis",
        "db.operation.name": "SET",
        "db.query.text": "SET ? ?",
        "server.address": "127.0.0.1",
        "server.port": 6379,
        "db.namespace": "2",
    }
    assert not got.error


@pytest.mark.parametrize(("command", "text"), [
    (("ping", 1), "PING"),
    (("hset", 6), "HSET ? ? ? ? ?"),
    (("client", 4), "CLIENT ? ? ?"),
    (("json.set", 4), "JSON.SET ? ? ?"),
])
def test_query_text_is_the_command_then_a_placeholder_per_argument(layout, command, text):
    assert span(layout, (command,)).attributes["db.query.text"] == text


def test_a_name_that_is_not_a_command_gives_no_operation(layout):
    got = span(layout, (("\x01\x02garbage", 2),))
    assert got.name == "redis"
    assert "db.operation.name" not in got.attributes
    assert "db.query.text" not in got.attributes


def test_a_name_longer_than_its_slot_gives_no_operation(layout):
    got = span(layout, (("x" * (NAME_SIZE + 1), 1),))
    assert got.name == "redis" and "db.operation.name" not in got.attributes


def test_nil_is_not_an_error(layout):
    got = span(layout, error="redis: nil")
    assert not got.error
    assert "error.type" not in got.attributes


@pytest.mark.parametrize("prefix", ["ERR", "WRONGTYPE", "NOSCRIPT", "CLUSTERDOWN"])
def test_an_error_reply_is_an_error_of_its_prefix_only(layout, prefix):
    got = span(layout, error=f"{prefix} unknown command 'secret-value', with args")
    assert got.error
    assert got.attributes["error.type"] == prefix
    assert got.attributes["db.response.status_code"] == prefix
    assert got.status_message == ""
    assert "secret" not in repr(got)


@pytest.mark.parametrize("text", [
    "dial tcp 127.0.0.1:1: connect: connection refused",
    "redis: connection pool timeout",
    "context deadline exceeded",
    "",  # unreadable
    "\x90\x13\x00garbage",
    "redis: nil and more",
])
def test_other_errors_are_other(layout, text):
    got = span(layout, error=text)
    assert got.error
    assert got.attributes["error.type"] == "_OTHER"
    assert "db.response.status_code" not in got.attributes


def test_nil_needs_the_whole_text():
    assert error_class("redis: nil", 10) is None
    assert error_class("redis: nil", 11) == "_OTHER"  # a longer text cut at the buffer


def test_pipeline_of_different_commands(layout):
    got = span(layout, (("set", 3), ("get", 2), ("incr", 2)), kind=PIPELINE)
    assert got.name == "PIPELINE"
    assert got.attributes["db.operation.name"] == "PIPELINE"
    assert got.attributes["db.operation.batch.size"] == 3
    assert got.attributes["db.query.text"] == "SET ? ?; GET ?; INCR ?"


def test_pipeline_of_one_command_names_it(layout):
    got = span(layout, (("get", 2), ("get", 2)), kind=PIPELINE)
    assert got.name == "PIPELINE GET"
    assert got.attributes["db.query.text"] == "GET ?"
    assert got.attributes["db.operation.batch.size"] == 2


def test_a_batch_of_one_is_one_operation(layout):
    got = span(layout, (("select", 2),), kind=PIPELINE)
    assert got.name == "PIPELINE SELECT"
    assert "db.operation.batch.size" not in got.attributes


def test_transaction(layout):
    got = span(layout, (("incr", 2), ("incr", 2)), kind=TRANSACTION)
    assert got.name == "MULTI INCR"
    assert got.attributes["db.operation.batch.size"] == 2


def test_an_empty_batch_has_size_zero(layout):
    got = span(layout, (), kind=TRANSACTION)
    assert got.name == "MULTI"
    assert got.attributes["db.operation.batch.size"] == 0
    assert "db.query.text" not in got.attributes


def test_a_batch_longer_than_its_slots(layout):
    commands = (("get", 2),) * BATCH_NAMES
    got = span(layout, commands, kind=PIPELINE, batch_size=BATCH_NAMES + 5)
    # Only the first commands are known: not named after one, their texts marked cut.
    assert got.name == "PIPELINE"
    assert got.attributes["db.operation.batch.size"] == BATCH_NAMES + 5
    assert got.attributes["db.query.text"] == "GET ?"
    assert got.attributes["gotel.truncated"] == "db.query.text"


def test_unix_socket_address(layout):
    got = span(layout, addr="/run/redis/redis.sock", network="unix")
    assert got.attributes["server.address"] == "/run/redis/redis.sock"
    assert "server.port" not in got.attributes
