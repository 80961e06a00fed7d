"""ExportPipeline: batching by size and age, backpressure, retries, and every drop counted.

The exporter here is a recorder (the pipeline's logic is what is under test); the OTLP
exporter itself is tested against a real receiver in test_export_otlp.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gotel.export import ExportPipeline, ExportResult, PipelineLimits, SpanChunk
from gotel.export.otlp_encode import SpanEncoder, encode_resource, encode_scope
from gotel.export.pipeline import (
    DROP_EXPORT_FAILED,
    DROP_QUEUE_FULL,
    DROP_REJECTED,
    DROP_SHUTDOWN,
)

RESOURCE_A = encode_resource({"service.name": "a"})
RESOURCE_B = encode_resource({"service.name": "b"})
SCOPE_HTTP = encode_scope("gotel/net/http", "0")
SCOPE_GRPC = encode_scope("gotel/grpc", "0")
_encoder = SpanEncoder()
_next_id = iter(range(1, 1 << 62))


def spans(count: int) -> list[bytes]:
    """Encoded spans whose span ids count up, so that order and loss can be read back."""
    out = []
    for _ in range(count):
        n = next(_next_id)
        out.append(
            _encoder.encode(
                b"\x01" * 16, n.to_bytes(8, "big"), None, 0x101, "op", 1, 1, 2, {"i": n}
            )
        )
    return out


def span_ids(request: bytes) -> list[int]:
    message = ExportTraceServiceRequest.FromString(request)
    return [
        int.from_bytes(span.span_id, "big")
        for rs in message.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


class Recorder:
    """An exporter that records requests; results can be scripted, calls held at a gate."""

    what = "recorder"

    def __init__(self, *results: ExportResult) -> None:
        self.requests: list[bytes] = []
        self.counts: list[int] = []
        self.behind: list[bool] = []
        self.results = list(results)
        self.gate = threading.Event()
        self.gate.set()
        self.shut_down = False

    def export(self, request: bytes, spans: int, *, behind: bool = False) -> ExportResult:
        self.gate.wait()
        self.requests.append(request)
        self.counts.append(spans)
        self.behind.append(behind)
        return self.results.pop(0) if self.results else ExportResult(True)

    def shutdown(self) -> None:
        self.shut_down = True


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def limits(**overrides: float) -> PipelineLimits:
    values = dict(batch_spans=3, max_batch_spans=6, interval_s=60, max_queue_spans=100)
    values.update(overrides)
    return PipelineLimits(**values)  # type: ignore[arg-type]


def test_sends_full_batches_at_once_and_the_rest_at_shutdown() -> None:
    recorder = Recorder()
    pipeline = ExportPipeline(recorder, limits())
    for sent in (1, 2):
        for _ in range(3):
            assert pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(1))) == 1
        _wait_until(lambda n=sent: len(recorder.requests) == n)
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(1)))
    time.sleep(0.1)
    assert recorder.counts == [3, 3]  # the 7th waits: neither a full batch nor old
    pipeline.shutdown()
    assert recorder.counts == [3, 3, 1]
    ids = [i for r in recorder.requests for i in span_ids(r)]
    assert ids == sorted(ids) and len(ids) == 7  # order kept, nothing lost
    assert pipeline.stats.exported == 7 and not pipeline.stats.dropped
    assert recorder.shut_down


def test_a_partial_batch_waits_at_most_the_interval() -> None:
    recorder = Recorder()
    pipeline = ExportPipeline(recorder, limits(interval_s=0.2))
    added = time.monotonic()
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(1)))
    _wait_until(lambda: recorder.requests)
    assert 0.15 < time.monotonic() - added < 1.0
    pipeline.shutdown()


def test_flush_sends_now() -> None:
    recorder = Recorder()
    pipeline = ExportPipeline(recorder, limits())
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(2)))
    assert pipeline.flush(5)
    assert recorder.counts == [2]
    pipeline.shutdown()


def test_requests_group_spans_by_process_and_scope() -> None:
    recorder = Recorder()
    pipeline = ExportPipeline(recorder, limits(batch_spans=10, max_batch_spans=10))
    first, second, third = spans(2), spans(1), spans(3)
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, first))
    pipeline.add(SpanChunk(RESOURCE_B, SCOPE_HTTP, second))
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_GRPC, third))
    pipeline.flush(5)
    pipeline.shutdown()
    [request] = recorder.requests
    message = ExportTraceServiceRequest.FromString(request)
    shape = [
        (
            rs.resource.attributes[0].value.string_value,
            [(ss.scope.name, len(ss.spans)) for ss in rs.scope_spans],
        )
        for rs in message.resource_spans
    ]
    assert shape == [
        ("a", [("gotel/net/http", 2), ("gotel/grpc", 3)]),
        ("b", [("gotel/net/http", 1)]),
    ]


def test_a_full_queue_drops_new_spans_counts_them_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    recorder.gate.clear()  # the exporter hangs: nothing leaves the queue
    pipeline = ExportPipeline(recorder, limits(max_queue_spans=10, max_batch_spans=3))
    with caplog.at_level(logging.WARNING):
        pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
        _wait_until(lambda: pipeline.queued == 0)  # taken by the hung export
        assert pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(8))) == 8
        assert pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(5))) == 2  # room for 2
        for _ in range(3):
            assert pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(4))) == 0
    assert pipeline.stats.dropped == {DROP_QUEUE_FULL: 15}
    full = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(full) == 1
    recorder.gate.set()
    pipeline.shutdown()
    assert pipeline.stats.exported == 13
    assert sum(recorder.counts) == 13
    assert "15 dropped (queue full 15)" in pipeline.summary()


def test_a_byte_bound_also_limits_the_queue() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    one = spans(1)
    pipeline = ExportPipeline(recorder, limits(max_queue_bytes=len(one[0]) * 4))
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    _wait_until(lambda: pipeline.queued == 0)
    assert pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(4))) == 4
    assert pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, one)) == 0
    recorder.gate.set()
    pipeline.shutdown()
    assert pipeline.stats.dropped == {DROP_QUEUE_FULL: 1}


def test_a_retryable_failure_is_retried_with_backoff_until_it_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = ExportResult(False, "connection refused", retryable=True)
    recorder = Recorder(down, down)
    pipeline = ExportPipeline(recorder, limits(retry_initial_s=0.1, retry_max_s=0.2))
    caplog.set_level(logging.INFO)
    batch = spans(3)
    started = time.monotonic()
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, batch))
    _wait_until(lambda: pipeline.stats.exported == 3)
    assert time.monotonic() - started >= 0.2  # 0.1 s, then 0.2 s (±20 % jitter)
    pipeline.shutdown()
    assert recorder.requests[0] == recorder.requests[1] == recorder.requests[2]
    assert recorder.behind == [False, True, True]  # retries go out as if behind
    assert pipeline.stats.retries == 2 and not pipeline.stats.dropped
    messages = [r.getMessage() for r in caplog.records]
    assert sum("export failed" in m for m in messages) == 1
    assert "kept for retry" in messages[0] and "connection refused" in messages[0]
    assert any("recovered after 2 failed attempt(s), 0 span(s) lost" in m for m in messages)


def test_a_permanent_failure_drops_the_request_and_counts_it() -> None:
    recorder = Recorder(ExportResult(False, "HTTP 400 Bad Request"))
    pipeline = ExportPipeline(recorder, limits())
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(2)))
    pipeline.shutdown()
    assert pipeline.stats.dropped == {DROP_EXPORT_FAILED: 3}
    assert pipeline.stats.exported == 2 and pipeline.stats.retries == 0


def test_retries_give_up_after_the_limit() -> None:
    down = ExportResult(False, "unavailable", retryable=True)
    recorder = Recorder(*[down] * 100)
    pipeline = ExportPipeline(
        recorder, limits(retry_initial_s=0.05, retry_max_s=0.05, retry_give_up_s=0.3)
    )
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    _wait_until(lambda: pipeline.stats.dropped)
    assert pipeline.stats.dropped == {DROP_EXPORT_FAILED: 3}
    assert 3 <= len(recorder.requests) <= 10
    recorder.results.clear()
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))  # the collector is back
    _wait_until(lambda: pipeline.stats.exported == 3)
    pipeline.shutdown()


def test_spans_a_collector_rejects_are_counted() -> None:
    recorder = Recorder(ExportResult(True, "too old", rejected=2))
    pipeline = ExportPipeline(recorder, limits())
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    pipeline.shutdown()
    assert pipeline.stats.exported == 1
    assert pipeline.stats.dropped == {DROP_REJECTED: 2}


def test_falling_behind_makes_requests_bigger_and_says_so() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    pipeline = ExportPipeline(recorder, limits(batch_spans=3, max_batch_spans=9))
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    _wait_until(lambda: pipeline.queued == 0)
    for _ in range(6):  # 18 queued behind the held request: more than 2 batches
        pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    recorder.gate.set()
    pipeline.shutdown()
    assert recorder.counts == [3, 9, 9]
    assert recorder.behind == [False, True, True]
    assert pipeline.stats.exported == 21 and pipeline.stats.peak_queued == 18


def test_shutdown_ends_by_its_deadline_when_the_collector_is_down() -> None:
    down = ExportResult(False, "unavailable", retryable=True)
    recorder = Recorder(*[down] * 1000)
    pipeline = ExportPipeline(recorder, limits(retry_initial_s=0.05, retry_max_s=0.1))
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(2)))
    started = time.monotonic()
    pipeline.shutdown(timeout_s=0.5)
    assert time.monotonic() - started < 2.0
    assert pipeline.stats.dropped == {DROP_SHUTDOWN: 5}
    assert pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(1))) == 0
    assert pipeline.stats.dropped == {DROP_SHUTDOWN: 6}


def test_an_exporter_that_raises_does_not_stop_the_thread() -> None:
    class Broken(Recorder):
        def export(self, request: bytes, spans: int, *, behind: bool = False) -> ExportResult:
            raise RuntimeError("bug")

    pipeline = ExportPipeline(Broken(), limits())
    pipeline.add(SpanChunk(RESOURCE_A, SCOPE_HTTP, spans(3)))
    _wait_until(lambda: pipeline.stats.dropped)
    assert pipeline.stats.dropped == {DROP_EXPORT_FAILED: 3}
    pipeline.shutdown()


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        PipelineLimits(batch_spans=10, max_batch_spans=5)
    with pytest.raises(ValueError):
        PipelineLimits(interval_s=0)
