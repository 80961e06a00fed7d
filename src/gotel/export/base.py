"""The exporter interface and what every exporter shares: results, not exceptions.

Every exporter receives the same thing: one encoded OTLP ExportTraceServiceRequest. The OTLP
exporter sends it as it is; the text exporters decode it. So the bytes a collector gets are
the bytes `console` and `jsonl` show.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ExportResult:
    """What became of one request. `retryable`: worth sending again later (the collector is
    down or overloaded); `rejected`: spans a collector refused in a partial success."""

    ok: bool
    reason: str = ""
    retryable: bool = False
    rejected: int = 0
    retry_after_s: float | None = None


SUCCESS = ExportResult(True)


@runtime_checkable
class SpanExporter(Protocol):
    """Sends encoded requests somewhere. Telemetry must never crash the agent: nothing raises."""

    def export(self, request: bytes, spans: int, *, behind: bool = False) -> ExportResult:
        """Send one ExportTraceServiceRequest holding `spans` spans. `behind`: the queue is
        backing up (an exporter may trade CPU for bandwidth, e.g. compress)."""
        ...

    def shutdown(self) -> None:
        """Release connections and files."""
        ...


class NoneExporter:
    """`--exporter none`: spans are made, encoded and counted, but go nowhere."""

    def export(self, request: bytes, spans: int, *, behind: bool = False) -> ExportResult:
        return SUCCESS

    def shutdown(self) -> None:
        pass


class FailureStreak:
    """Logs the first failure of a streak with its reason, then the recovery with what was lost.

    A collector that is down fails every batch; one line per batch would drown the logs, while
    silence would hide the loss.
    """

    def __init__(self, what: str, log: logging.Logger) -> None:
        self._what = what
        self._log = log
        self._lock = threading.Lock()
        self._streak_batches = 0
        self._streak_spans = 0
        self.failed_spans = 0  # over the exporter's lifetime

    @property
    def failing(self) -> bool:
        return self._streak_batches > 0

    def failure(self, reason: str, spans: int, *, lost: bool = True) -> None:
        """One failed attempt; `lost`: its spans are gone (not kept for a retry)."""
        with self._lock:
            first = self._streak_batches == 0
            self._streak_batches += 1
            if lost:
                self._streak_spans += spans
                self.failed_spans += spans
        if first:
            self._log.warning(
                "%s: export failed (%d span(s) %s): %s (further failures are not logged until "
                "an export succeeds)",
                self._what,
                spans,
                "lost" if lost else "kept for retry",
                reason,
            )

    def success(self) -> None:
        with self._lock:
            if self._streak_batches == 0:
                return
            batches, spans = self._streak_batches, self._streak_spans
            self._streak_batches = self._streak_spans = 0
        self._log.info(
            "%s: export recovered after %d failed attempt(s), %d span(s) lost",
            self._what,
            batches,
            spans,
        )
