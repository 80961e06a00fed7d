"""BatchingExporter: batches by size and by age, flushes on shutdown, counts what it drops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from gotel.export import BatchingExporter
from gotel.trace.span import Span

MakeSpan = Callable[..., Span]


class Recorder:
    """An inner exporter that records batches; can be made to block or to fail."""

    def __init__(self, result: bool = True) -> None:
        self.batches: list[list[Span]] = []
        self.times: list[float] = []
        self.result = result
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.shut_down = False

    def export(self, spans: Sequence[Span]) -> bool:
        self.entered.set()
        self.gate.wait()
        self.batches.append(list(spans))
        self.times.append(time.monotonic())
        return self.result

    def shutdown(self) -> None:
        self.shut_down = True


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_flushes_by_size(make_span: MakeSpan) -> None:
    inner = Recorder()
    batching = BatchingExporter(inner, max_batch=3, interval_s=60)
    spans = [make_span(name=str(i)) for i in range(7)]
    for span in spans:
        assert batching.add(span)
    _wait_until(lambda: len(inner.batches) == 2)
    time.sleep(0.1)
    assert [len(b) for b in inner.batches] == [3, 3]  # the 7th waits: not full, not old
    batching.shutdown()
    assert [len(b) for b in inner.batches] == [3, 3, 1]
    assert [s for b in inner.batches for s in b] == spans  # order kept
    assert inner.shut_down


def test_flushes_by_time(make_span: MakeSpan) -> None:
    inner = Recorder()
    batching = BatchingExporter(inner, max_batch=100, interval_s=0.2)
    started = time.monotonic()
    batching.add(make_span())
    batching.add(make_span())
    _wait_until(lambda: len(inner.batches) == 1)
    waited = inner.times[0] - started
    assert 0.15 <= waited < 2.0
    assert len(inner.batches[0]) == 2
    batching.shutdown()
    assert len(inner.batches) == 1  # nothing left to flush


def test_flushes_on_shutdown(make_span: MakeSpan) -> None:
    inner = Recorder()
    batching = BatchingExporter(inner, max_batch=100, interval_s=60)
    assert batching.export([make_span() for _ in range(5)]) is True
    batching.shutdown()
    assert [len(b) for b in inner.batches] == [5]
    assert batching.exported == 5
    assert batching.add(make_span()) is False  # after shutdown: refused, counted
    assert batching.dropped == 1


def test_flush_waits_for_delivery(make_span: MakeSpan) -> None:
    inner = Recorder()
    batching = BatchingExporter(inner, max_batch=100, interval_s=60)
    batching.export([make_span() for _ in range(3)])
    assert batching.flush(timeout_s=5) is True
    assert [len(b) for b in inner.batches] == [3]
    assert batching.flush(timeout_s=5) is True  # nothing queued: returns at once
    batching.shutdown()


def test_overflow_is_dropped_and_counted(
    make_span: MakeSpan, caplog: pytest.LogCaptureFixture
) -> None:
    inner = Recorder()
    inner.gate.clear()  # the exporter hangs, as with a slow collector
    batching = BatchingExporter(inner, max_batch=2, interval_s=60, max_queue=4)
    caplog.set_level(logging.WARNING)
    batching.export([make_span(), make_span()])  # a full batch: taken, export blocks
    assert inner.entered.wait(5)
    assert batching.export([make_span() for _ in range(4)]) is True  # fills the queue
    assert batching.export([make_span() for _ in range(3)]) is False
    assert batching.dropped == 3
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1
    inner.gate.set()
    batching.shutdown()
    assert sum(len(b) for b in inner.batches) == 6
    assert "3 span(s) dropped" in caplog.text


def test_failed_exports_are_counted(make_span: MakeSpan) -> None:
    inner = Recorder(result=False)
    batching = BatchingExporter(inner, max_batch=2, interval_s=60)
    batching.export([make_span() for _ in range(3)])
    batching.shutdown()
    assert (batching.failed, batching.exported) == (3, 0)


def test_exporter_that_raises_does_not_kill_the_thread(make_span: MakeSpan) -> None:
    inner = Recorder()
    calls = []

    def flaky(spans: Sequence[Span]) -> bool:
        calls.append(len(spans))
        if len(calls) == 1:
            raise RuntimeError("bug")
        return True

    inner.export = flaky  # type: ignore[method-assign]
    batching = BatchingExporter(inner, max_batch=1, interval_s=60)
    batching.export([make_span(), make_span()])
    batching.shutdown()
    assert calls == [1, 1]
    assert (batching.failed, batching.exported) == (1, 1)
