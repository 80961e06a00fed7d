"""The export pipeline: one bounded queue of encoded spans and one thread that sends them.

Sessions (the thread draining the ring buffers) add chunks of already-encoded spans; the
export thread groups them into OTLP requests by resource and scope, sends them, and retries
what the collector could not take. Backpressure before loss: when spans arrive faster than
they leave, requests grow (up to `max_batch_spans`) and the exporter is told it is behind
(the OTLP exporter then compresses); a collector that fails gets the same request again with
exponential backoff while new spans wait in the queue. Only when the queue is full (its span
and byte bounds keep the agent's memory flat) are new spans dropped. Every span dropped is
counted by reason and reported; none is lost silently.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import dataclass, field

from gotel.export.base import ExportResult, FailureStreak, SpanExporter
from gotel.export.otlp_encode import resource_spans, scope_spans

logger = logging.getLogger(__name__)

# Why a span was dropped (the keys of PipelineStats.dropped).
DROP_QUEUE_FULL = "queue full"
DROP_EXPORT_FAILED = "export failed"
DROP_REJECTED = "rejected by the collector"
DROP_SHUTDOWN = "not sent at shutdown"


@dataclass(slots=True)
class SpanChunk:
    """Encoded spans of one process and one instrumentation scope, added in one call."""

    resource: bytes  # an encoded Resource: one object per process
    scope: bytes  # an encoded InstrumentationScope: one object per probe
    spans: list[bytes]  # complete ScopeSpans.spans fields
    size: int = -1  # bytes of `spans`; computed when -1

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = sum(map(len, self.spans))


@dataclass
class PipelineStats:
    accepted: int = 0
    exported: int = 0
    requests: int = 0
    retries: int = 0
    peak_queued: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    assemble_cpu_s: float = 0.0  # export thread CPU joining chunks into requests
    send_cpu_s: float = 0.0  # export thread CPU in the exporter (compression, I/O, parsing)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass(frozen=True)
class PipelineLimits:
    batch_spans: int = 2048  # a request when this many are queued
    max_batch_spans: int = 8192  # the most in one request, when behind
    max_request_bytes: int = 3 << 20  # under gRPC's default 4 MiB message limit
    interval_s: float = 1.0  # the longest a span waits for a partial batch
    max_queue_spans: int = 131_072  # ~2.6 s of spans at 50k/s
    max_queue_bytes: int = 64 << 20
    retry_initial_s: float = 0.5
    retry_max_s: float = 15.0
    retry_give_up_s: float = 120.0  # a request failing this long is dropped

    def __post_init__(self) -> None:
        if not 1 <= self.batch_spans <= self.max_batch_spans <= self.max_queue_spans:
            raise ValueError("need 1 <= batch_spans <= max_batch_spans <= max_queue_spans")
        if self.interval_s <= 0:
            raise ValueError("interval_s must be positive")


class ExportPipeline:
    def __init__(self, exporter: SpanExporter, limits: PipelineLimits | None = None) -> None:
        self.exporter = exporter
        self.limits = limits or PipelineLimits()
        self.stats = PipelineStats()
        self._queue: collections.deque[SpanChunk] = collections.deque()
        self._queued_spans = 0
        self._queued_bytes = 0
        self._oldest_at = 0.0  # monotonic time the oldest queued chunk arrived
        self._cond = threading.Condition()
        self._flush_requested = 0
        self._flush_done = 0
        self._stopping = False
        self._deadline = 0.0  # at shutdown: retries stop at this monotonic time
        self._full = False  # inside a streak of queue-full drops (logged once per streak)
        self._full_dropped = 0
        self._what = getattr(exporter, "what", type(exporter).__name__)
        self._failures = FailureStreak(self._what, logger)
        self._thread = threading.Thread(target=self._run, name="gotel-export", daemon=True)
        self._thread.start()

    # -- producer side (the draining thread) ----------------------------------------------
    def add(self, chunk: SpanChunk) -> int:
        """Queue a chunk; returns how many of its spans were accepted (the rest are counted
        as dropped). Never blocks on the exporter."""
        count = len(chunk.spans)
        if not count:
            return 0
        limits = self.limits
        with self._cond:
            if self._stopping:
                self._drop(DROP_SHUTDOWN, count)
                return 0
            room = limits.max_queue_spans - self._queued_spans
            if self._queued_bytes + chunk.size > limits.max_queue_bytes:
                room = 0
            if room < count:
                self._drop_full(count - max(room, 0))
                if room <= 0:
                    return 0
                chunk = SpanChunk(chunk.resource, chunk.scope, chunk.spans[:room])
                count = room
            elif self._full:
                self._end_full()
            if not self._queue:
                self._oldest_at = time.monotonic()
            self._queue.append(chunk)
            self._queued_spans += count
            self._queued_bytes += chunk.size
            self.stats.accepted += count
            if self._queued_spans > self.stats.peak_queued:
                self.stats.peak_queued = self._queued_spans
            if self._queued_spans >= limits.batch_spans or len(self._queue) == 1:
                self._cond.notify()
        return count

    @property
    def queued(self) -> int:
        return self._queued_spans

    def _drop(self, reason: str, count: int) -> None:
        # Called with the lock held.
        self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + count

    def _drop_full(self, count: int) -> None:
        self._drop(DROP_QUEUE_FULL, count)
        self._full_dropped += count
        if not self._full:
            self._full = True
            logger.warning(
                "export queue full (%d spans, %.1f MiB): dropping new spans until the exporter "
                "catches up",
                self._queued_spans,
                self._queued_bytes / (1 << 20),
            )

    def _end_full(self) -> None:
        logger.warning("export queue: %d span(s) dropped while full", self._full_dropped)
        self._full = False
        self._full_dropped = 0

    # -- flushing ---------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything queued now; True if done within the timeout."""
        with self._cond:
            self._flush_requested += 1
            ticket = self._flush_requested
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._flush_done >= ticket, timeout_s)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (retrying until `timeout_s`), stop the thread, close the exporter."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        self._thread.join(timeout_s + 5.0)
        with self._cond:
            if self._queue:  # the thread is stuck in a send: what it did not reach is lost
                self._drop(DROP_SHUTDOWN, self._queued_spans)
                self._queue.clear()
                self._queued_spans = self._queued_bytes = 0
            if self._full:
                self._end_full()
        if self.stats.dropped_total:
            logger.warning(
                "export: %d span(s) dropped in total (%s)", self.stats.dropped_total, self.summary()
            )
        try:
            self.exporter.shutdown()
        except Exception as exc:  # the protocol says it does not raise; do not trust it blindly
            logger.warning("exporter shutdown failed: %s", exc)

    def summary(self) -> str:
        """'N exported, M dropped (reason n, ...)' for log lines."""
        text = f"{self.stats.exported} exported"
        if self.stats.dropped_total:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.stats.dropped.items()) if v)
            text += f", {self.stats.dropped_total} dropped ({reasons})"
        return text

    # -- export thread ----------------------------------------------------------------------
    def _due(self) -> bool:
        limits = self.limits
        if self._queued_spans >= limits.batch_spans or self._stopping:
            return True
        if self._flush_requested > self._flush_done:
            return True
        return bool(self._queue) and time.monotonic() >= self._oldest_at + limits.interval_s

    def _take(self) -> tuple[list[SpanChunk], int, bool, int]:
        """Wait for a due batch; (chunks, spans, behind, flush generation it satisfies)."""
        with self._cond:
            while not self._due():
                wait = None
                if self._queue:
                    wait = max(0.0, self._oldest_at + self.limits.interval_s - time.monotonic())
                self._cond.wait(wait)
            limits = self.limits
            behind = self._queued_spans >= 2 * limits.batch_spans or self._failures.failing
            target = limits.max_batch_spans if behind else limits.batch_spans
            taken: list[SpanChunk] = []
            spans = size = 0
            while self._queue and spans < target and size < limits.max_request_bytes:
                chunk = self._queue[0]
                room = target - spans
                if len(chunk.spans) > room:  # split: the rest stays at the head
                    head = SpanChunk(chunk.resource, chunk.scope, chunk.spans[:room])
                    rest = SpanChunk(chunk.resource, chunk.scope, chunk.spans[room:])
                    self._queue[0] = rest
                    chunk = head
                else:
                    self._queue.popleft()
                taken.append(chunk)
                spans += len(chunk.spans)
                size += chunk.size
            self._queued_spans -= spans
            self._queued_bytes -= size
            if self._queue:
                self._oldest_at = time.monotonic()  # at worst early for what remains, never late
            generation = self._flush_requested if not self._queue else self._flush_done
            return taken, spans, behind, generation

    def _run(self) -> None:
        while True:
            taken, spans, behind, generation = self._take()
            if taken:
                started = time.thread_time()
                request = assemble(taken)
                self.stats.assemble_cpu_s += time.thread_time() - started
                self._deliver(request, spans, behind)
            with self._cond:
                self._flush_done = max(self._flush_done, generation)
                self._cond.notify_all()
                if self._stopping and not self._queue:
                    return

    def _deliver(self, request: bytes, spans: int, behind: bool) -> None:
        """Send one request, retrying with backoff while the failure is retryable."""
        limits = self.limits
        first_try = time.monotonic()
        backoff = limits.retry_initial_s
        while True:
            started = time.thread_time()
            try:
                result = self.exporter.export(request, spans, behind=behind)
            except Exception as exc:  # never let the thread die: spans would pile up
                result = ExportResult(False, f"exporter raised (a bug): {exc}")
            self.stats.send_cpu_s += time.thread_time() - started
            with self._cond:
                self.stats.requests += 1
                if result.ok:
                    self.stats.exported += spans - result.rejected
                    if result.rejected:
                        self._drop(DROP_REJECTED, result.rejected)
                        logger.warning(
                            "%s: collector rejected %d of %d span(s): %s",
                            self._what,
                            result.rejected,
                            spans,
                            result.reason,
                        )
            if result.ok:
                self._failures.success()
                return
            now = time.monotonic()
            stop_at = self._deadline if self._stopping else first_try + limits.retry_give_up_s
            wait = min(result.retry_after_s or backoff, limits.retry_max_s)
            wait *= random.uniform(0.8, 1.2)  # several agents must not retry in lockstep
            if not result.retryable or now + wait > stop_at:
                late = result.retryable and self._stopping  # would have been retried
                with self._cond:
                    self._drop(DROP_SHUTDOWN if late else DROP_EXPORT_FAILED, spans)
                self._failures.failure(result.reason, spans)
                return
            self._failures.failure(result.reason, spans, lost=False)
            was_stopping = self._stopping
            with self._cond:
                self.stats.retries += 1
                # Wakes early when shutdown begins: its deadline then bounds the retries.
                self._cond.wait_for(lambda was=was_stopping: self._stopping != was, wait)
            backoff = min(backoff * 2, limits.retry_max_s)
            behind = True  # what queued meanwhile goes out in bigger, compressed requests


def assemble(chunks: list[SpanChunk]) -> bytes:
    """An ExportTraceServiceRequest from chunks: one ResourceSpans per process, one ScopeSpans
    per scope in it, spans in the order they were added."""
    groups: dict[bytes, dict[bytes, list[bytes]]] = {}
    for chunk in chunks:
        scopes = groups.get(chunk.resource)
        if scopes is None:
            scopes = groups[chunk.resource] = {}
        spans = scopes.get(chunk.scope)
        if spans is None:
            scopes[chunk.scope] = list(chunk.spans)
        else:
            spans.extend(chunk.spans)
    return b"".join(
        resource_spans(resource, [scope_spans(scope, spans) for scope, spans in scopes.items()])
        for resource, scopes in groups.items()
    )
