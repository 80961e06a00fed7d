"""The update's progress on stderr: a line per finished scan; on a terminal, a live status line."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from gotel.offsets.scan import Job, ScanResult


class Progress:
    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.finished = 0
        self.running: list[str] = []
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._live = bool(getattr(out, "isatty", lambda: False)())
        self._status_len = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self._live:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def started(self, job: Job) -> None:
        with self._lock:
            self.running.append(job.label)
            self._draw()

    def done(self, result: ScanResult) -> None:
        job = result.job
        with self._lock:
            self.finished += 1
            if job.label in self.running:
                self.running.remove(job.label)
            absent = sum(1 for v in result.values.values() if v is None)
            if result.failure and not result.values:
                what = f"FAILED: {result.failure}"
            else:
                what = f"{len(result.values)} fields ({absent} absent)"
                if result.failure:
                    what += f", incomplete: {result.failure}"
            width = len(str(self.total))
            self._clear()
            self.out.write(f"offsets: [{self.finished:>{width}}/{self.total}] {job.label:<14} "
                           f"{what}  {result.seconds:.1f} s\n")
            self._draw()
            self.out.flush()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._clear()
            self.out.flush()

    # --- the live line (terminals only) ----------------------------------------------------------
    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        if not self._live or self._stop.is_set():
            return
        elapsed = time.monotonic() - self.start
        line = f"  scanning {', '.join(self.running) or '-'}  {self.finished}/{self.total} done, "
        line += _clock(elapsed)
        if self.finished:
            line += f", ~{_clock(elapsed / self.finished * (self.total - self.finished))} left"
        self._clear()
        self.out.write(line)
        self._status_len = len(line)
        self.out.flush()

    def _clear(self) -> None:
        if self._live and self._status_len:
            self.out.write("\r" + " " * self._status_len + "\r")
            self._status_len = 0


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
