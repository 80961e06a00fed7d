"""RingBuffer on real kernel ring buffers: wraparound, overflow, discards, batching, cost."""

from __future__ import annotations

import mmap
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ebpf_testing import LoopProcess

from gotel.ebpf import HEADER_SIZE, BpfObject, Link, RingBuffer, record_stride
from gotel.errors import GotelError

SMALL_RING = 4096
RECORD = 72 + 8  # struct event + ring header, already 8-byte aligned


@pytest.fixture
def obj(bpf_objects: dict[str, Path]) -> Iterator[BpfObject]:
    with BpfObject(bpf_objects["testprobe"]) as o:
        yield o


def attach(obj: BpfObject, loop: LoopProcess) -> Link:
    return obj.attach_uprobe("on_call", loop.target.path, loop.target.offset, loop.pid)


def check_records(
    obj: BpfObject, records: list[bytes], first_arg: int, first_aux: int = 0
) -> list[dict[str, Any]]:
    """Every record intact: consecutive arguments and all derived fields consistent."""
    decode = obj.struct_layout("event").decoder()
    events = [decode(r) for r in records]
    assert all(len(r) == 72 for r in records)
    assert [e["arg"] for e in events] == list(range(first_arg, first_arg + len(events)))
    assert [e["aux"] for e in events] == list(range(first_aux, first_aux + len(events)))
    for e in events:
        assert e["product"] == e["arg"] * 3
        assert (e["halves.lo"], e["halves.hi"], e["flag"]) == (e["arg"], 0, e["arg"] & 1)
        assert e["hist"] == (1, 2, 3) and e["tag"] == b"ring".ljust(12, b"\0")
    return events


def test_wraps_many_times_without_corruption(obj: BpfObject, loop: LoopProcess) -> None:
    obj.set_max_entries("events", SMALL_RING)
    obj.set_constants({"multiplier": 3, "tag_text": b"ring"})
    obj.load()
    ring = obj.ring_buffer("events")
    assert ring.size == SMALL_RING
    attach(obj, loop)
    per_round = 40  # 40 * 80 = 3200 bytes: fits, and records straddle the end of the ring
    rounds = 30
    seqs: list[int] = []
    for r in range(rounds):
        loop.call(per_round, 10_000 * r)
        events = check_records(obj, ring.drain(), 10_000 * r)
        assert len(events) == per_round
        seqs += [e["seq"] for e in events]
    assert seqs == list(range(per_round * rounds))
    assert per_round * rounds * RECORD // SMALL_RING >= 20  # wrapped that many times
    assert obj.percpu_sum("drops") == 0
    assert ring.pending() == 0


def test_overflow_is_counted_and_the_ring_recovers(obj: BpfObject, loop: LoopProcess) -> None:
    obj.set_max_entries("events", SMALL_RING)
    obj.set_constants({"multiplier": 3, "tag_text": b"ring"})
    obj.load()
    ring = obj.ring_buffer("events")
    attach(obj, loop)
    total_calls = received = 0
    for r in range(5):
        loop.call(30, 0)  # move the positions so each overflow starts mid-ring
        total_calls += 30
        received += len(check_records(obj, ring.drain(), 0))
        calls = 1000
        loop.call(calls, 100_000 * (r + 1))
        total_calls += calls
        kept = check_records(obj, ring.drain(), 100_000 * (r + 1))
        assert 0 < len(kept) <= SMALL_RING // RECORD  # the oldest ones, intact
        received += len(kept)
        assert obj.percpu_sum("drops") == total_calls - received
    loop.call(40, 7)
    assert len(check_records(obj, ring.drain(), 7)) == 40
    assert obj.percpu_sum("drops") == total_calls - received  # no loss once drained


def test_discarded_records_are_skipped(obj: BpfObject, loop: LoopProcess) -> None:
    obj.set_max_entries("events", SMALL_RING)
    obj.set_constants({"discard_odd": 1})
    obj.load()
    ring = obj.ring_buffer("events")
    decode = obj.struct_layout("event").decoder()
    attach(obj, loop)
    for r in range(10):  # 20 calls, 10 kept + 10 discarded = 1600 ring bytes a round
        loop.call(20, 1000 * r)
        assert ring.pending() == 20 * RECORD
        args = [decode(rec)["arg"] for rec in ring.drain()]
        assert args == list(range(1000 * r, 1000 * r + 20, 2))
        assert ring.pending() == 0  # discarded space was consumed too


def test_drain_limit_keeps_the_rest_in_order(obj: BpfObject, loop: LoopProcess) -> None:
    obj.set_constants({"multiplier": 3, "tag_text": b"ring"})
    obj.load()
    ring = obj.ring_buffer("events")
    attach(obj, loop)
    loop.call(20, 50)
    first = ring.drain(limit=5)
    assert len(first) == 5
    rest = ring.drain()
    check_records(obj, first + rest, 50)
    assert len(rest) == 15
    assert ring.drain() == [] and ring.drain(limit=0) == []


def test_fileno_polls_readable_while_records_wait(obj: BpfObject, loop: LoopProcess) -> None:
    obj.load()
    ring = obj.ring_buffer("events")
    attach(obj, loop)
    poller = select.poll()
    poller.register(ring.fileno(), select.POLLIN)
    assert poller.poll(0) == []
    loop.call(3, 0)
    assert poller.poll(0) == [(ring.fileno(), select.POLLIN)]
    assert len(ring.drain()) == 3
    assert poller.poll(0) == []


def test_close_unmaps_and_is_idempotent(obj: BpfObject) -> None:
    obj.load()
    ring = obj.ring_buffer("events")
    ring.close()
    ring.close()
    assert ring.closed
    with pytest.raises(GotelError, match="closed"):
        ring.drain()
    with pytest.raises(GotelError, match="not a ring buffer"):
        obj.ring_buffer("drops")


def test_rejects_sizes_the_kernel_cannot_have() -> None:
    with pytest.raises(GotelError, match="not a power-of-2 page multiple"):
        RingBuffer(-1, mmap.PAGESIZE * 3, "bad")


def test_drain_cpu_per_event(
    obj: BpfObject, loop: LoopProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """~200k events: CPU of drain() (copying out), and of decoding, per event. Printed only."""
    events = 200_000
    obj.set_max_entries("events", 1 << 24)  # 16 MiB holds them all (80 bytes each)
    obj.load()
    ring = obj.ring_buffer("events")
    attach(obj, loop)
    loop.call(events, 0)
    start = time.thread_time_ns()
    records = ring.drain()
    drain_ns = time.thread_time_ns() - start
    decode = obj.struct_layout("event").decoder()
    start = time.thread_time_ns()
    decoded = [decode(r) for r in records]
    decode_ns = time.thread_time_ns() - start
    assert len(records) == events and obj.percpu_sum("drops") == 0
    assert decoded[-1]["arg"] == events - 1
    with capsys.disabled():
        print(
            f"\n[ebpf] drain: {drain_ns / events:.0f} ns CPU/event, "
            f"decode: {decode_ns / events:.0f} ns CPU/event ({events} events of 72 bytes)"
        )


def test_drain_block_copies_the_records_drain_would(obj: BpfObject, loop: LoopProcess) -> None:
    obj.set_max_entries("events", SMALL_RING)
    obj.set_constants({"multiplier": 3, "tag_text": b"ring"})
    obj.load()
    ring = obj.ring_buffer("events")
    attach(obj, loop)
    size = obj.struct_layout("event").size
    stride = record_stride(size)
    assert stride == RECORD
    for r in range(30):  # wraps: blocks straddle the end of the ring
        loop.call(40, 1000 * r)
        block, count = ring.drain_block(size)
        assert count == 40 and len(block) == 40 * stride
        records = [block[i * stride + HEADER_SIZE :][:size] for i in range(count)]
        check_records(obj, records, 1000 * r)
        assert ring.drain_block(size) == (b"", 0) and ring.pending() == 0


def test_drain_block_stops_where_records_differ(obj: BpfObject, loop: LoopProcess) -> None:
    obj.set_max_entries("events", SMALL_RING)
    obj.set_constants({"discard_odd": 1})
    obj.load()
    ring = obj.ring_buffer("events")
    attach(obj, loop)
    size = obj.struct_layout("event").size
    loop.call(4, 10)  # 10 kept, 11 discarded, 12 kept, 13 discarded
    _, count = ring.drain_block(size)
    assert count == 1  # 10, then a discarded record ends the run
    assert ring.drain_block(size) == (b"", 0)
    decode = obj.struct_layout("event").decoder()
    assert [decode(r)["arg"] for r in ring.drain(limit=1)] == [12]  # drain() skips discards
    assert ring.drain_block(size, limit=5) == (b"", 0)  # 13 is discarded too
    ring.drain()
    assert ring.pending() == 0
    assert ring.drain_block(size + 8) == (b"", 0)  # nothing of another size waits either
