"""The exporter interface and what every exporter shares: results, not exceptions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gotel.trace.span import Span


@runtime_checkable
class SpanExporter(Protocol):
    """Sends finished spans somewhere. Telemetry must never crash the agent: no method raises."""

    def export(self, spans: Sequence[Span]) -> bool:
        """Send one batch; False on failure (already logged, once per failure streak)."""
        ...

    def shutdown(self) -> None:
        """Flush what is buffered and release connections and files."""
        ...


class NoneExporter:
    """`--exporter none`: spans are assembled (and counted) but go nowhere."""

    def export(self, spans: Sequence[Span]) -> bool:
        return True

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

    def failure(self, reason: str, spans: int) -> None:
        with self._lock:
            first = self._streak_batches == 0
            self._streak_batches += 1
            self._streak_spans += spans
            self.failed_spans += spans
        if first:
            self._log.warning(
                "%s: export failed, %d span(s) lost: %s (further failures are not logged until "
                "an export succeeds)",
                self._what,
                spans,
                reason,
            )

    def success(self) -> None:
        with self._lock:
            if self._streak_batches == 0:
                return
            batches, spans = self._streak_batches, self._streak_spans
            self._streak_batches = self._streak_spans = 0
        self._log.info(
            "%s: export recovered after %d failed batch(es), %d span(s) lost",
            self._what,
            batches,
            spans,
        )
