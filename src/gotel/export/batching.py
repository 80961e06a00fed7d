"""A background thread between span producers and an exporter: batches by size or age."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence

from gotel.export.base import SpanExporter
from gotel.trace.span import Span

logger = logging.getLogger(__name__)


class BatchingExporter:
    """Queues spans from add() and sends them to `inner` in batches.

    A batch goes out when it holds `max_batch` spans or its oldest span has waited `interval_s`.
    The queue is bounded by `max_queue`: when the exporter cannot keep up (collector down or
    slow) new spans are dropped and counted rather than growing the agent's memory; the count
    is logged when the overflow ends and at shutdown, and readable in `dropped`.
    """

    def __init__(
        self,
        inner: SpanExporter,
        max_batch: int = 512,
        interval_s: float = 1.0,
        *,
        max_queue: int = 8192,
    ) -> None:
        if max_batch < 1 or max_queue < max_batch or interval_s <= 0:
            raise ValueError("need max_batch >= 1, max_queue >= max_batch and interval_s > 0")
        self._inner = inner
        self._max_batch = max_batch
        self._interval_s = interval_s
        self._max_queue = max_queue
        self._queue: collections.deque[Span] = collections.deque()
        self._cond = threading.Condition()
        self._oldest_at = 0.0  # monotonic time the oldest queued span arrived
        self._flush_requested = 0  # generation counters: flush() waits for its own request
        self._flush_done = 0
        self._stopping = False
        self._overflowing = False
        self._overflow_dropped = 0
        self.dropped = 0  # spans dropped because the queue was full (or after shutdown)
        self.exported = 0  # spans the inner exporter accepted
        self.failed = 0  # spans in batches the inner exporter failed
        self._thread = threading.Thread(target=self._run, name="gotel-export", daemon=True)
        self._thread.start()

    # -- producer side -------------------------------------------------------------------
    def add(self, span: Span) -> bool:
        """Queue one span; False if it was dropped (queue full or shut down). Never blocks."""
        with self._cond:
            if self._stopping:
                self.dropped += 1
                return False
            if len(self._queue) >= self._max_queue:
                self._drop(1)
                return False
            if self._overflowing:
                self._end_overflow()
            if not self._queue:
                self._oldest_at = time.monotonic()
            self._queue.append(span)
            if len(self._queue) == 1 or len(self._queue) >= self._max_batch:
                self._cond.notify()
        return True

    def export(self, spans: Sequence[Span]) -> bool:
        """SpanExporter interface: queue every span; False if any was dropped."""
        ok = True
        for span in spans:
            ok = self.add(span) and ok
        return ok

    def _drop(self, count: int) -> None:
        # Called with the lock held.
        self.dropped += count
        self._overflow_dropped += count
        if not self._overflowing:
            self._overflowing = True
            logger.warning(
                "export queue full (%d spans): dropping new spans until the exporter catches up",
                self._max_queue,
            )

    def _end_overflow(self) -> None:
        logger.warning("export queue: %d span(s) dropped while full", self._overflow_dropped)
        self._overflowing = False
        self._overflow_dropped = 0

    # -- flushing ------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything queued now; True if done within the timeout."""
        with self._cond:
            self._flush_requested += 1
            ticket = self._flush_requested
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._flush_done >= ticket, timeout_s)

    def shutdown(self, timeout_s: float | None = 30.0) -> None:
        """Flush what is queued, stop the thread, shut the inner exporter down."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("export thread did not finish within %ss; queued spans lost", timeout_s)
        with self._cond:
            if self._overflowing:
                self._end_overflow()
        if self.dropped:
            logger.warning("export queue: %d span(s) dropped in total", self.dropped)
        try:
            self._inner.shutdown()
        except Exception as exc:  # the protocol says it does not raise; do not trust it blindly
            logger.warning("exporter shutdown failed: %s", exc)

    # -- export thread -------------------------------------------------------------------
    def _take_batch(self) -> tuple[list[Span], int]:
        """Wait until a batch is due; return it and the flush generation it satisfies."""
        with self._cond:
            while True:
                queued = len(self._queue)
                flushing = self._flush_requested > self._flush_done
                if queued >= self._max_batch or self._stopping or flushing:
                    break
                if queued:
                    wait = self._oldest_at + self._interval_s - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            count = min(len(self._queue), self._max_batch)
            batch = [self._queue.popleft() for _ in range(count)]
            # _oldest_at is left as is for what remains: those spans are no older than the
            # batch just taken, so at worst they go out a little early, never late.
            # A flush is satisfied once the queue it saw is empty.
            generation = self._flush_requested if not self._queue else self._flush_done
            return batch, generation

    def _run(self) -> None:
        while True:
            batch, generation = self._take_batch()
            if batch:
                try:
                    ok = self._inner.export(batch)
                except Exception as exc:  # never let the thread die: spans would pile up
                    logger.warning("exporter raised (a bug): %s", exc)
                    ok = False
                with self._cond:
                    if ok:
                        self.exported += len(batch)
                    else:
                        self.failed += len(batch)
            with self._cond:
                self._flush_done = max(self._flush_done, generation)
                self._cond.notify_all()
                if self._stopping and not self._queue:
                    return
