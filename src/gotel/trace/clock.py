"""Kernel boot-time clock -> wall clock.

BPF events carry bpf_ktime_get_boot_ns(), which is CLOCK_BOOTTIME. BOOTTIME (unlike MONOTONIC)
keeps counting across suspend, as REALTIME does, so REALTIME - BOOTTIME changes only when the
wall clock is stepped (settimeofday, NTP step); refresh() picks such a step up.
"""

from __future__ import annotations

import time

_DEFAULT_SAMPLES = 7


def _sample() -> tuple[int, int]:
    """One (width, offset) measurement: REALTIME read between two BOOTTIME reads."""
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    width = after - before
    return width, real - (before + width // 2)


def measure_offset_ns(samples: int = _DEFAULT_SAMPLES) -> int:
    """CLOCK_REALTIME - CLOCK_BOOTTIME in ns, from the tightest of a few samples.

    The narrowest bracket is the one least disturbed by preemption between the reads.
    """
    best_width, best_offset = _sample()
    for _ in range(samples - 1):
        width, offset = _sample()
        if width < best_width:
            best_width, best_offset = width, offset
    return best_offset


class BootClock:
    """Converts CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns) to unix epoch nanoseconds."""

    __slots__ = ("_offset_ns", "_samples")

    def __init__(self, samples: int = _DEFAULT_SAMPLES) -> None:
        self._samples = max(1, samples)
        self._offset_ns = measure_offset_ns(self._samples)

    @property
    def offset_ns(self) -> int:
        return self._offset_ns

    def refresh(self) -> int:
        """Re-measure the offset (after a wall-clock step); returns how far it moved, in ns."""
        new = measure_offset_ns(self._samples)
        moved = new - self._offset_ns
        self._offset_ns = new  # one attribute store: readers on other threads see old or new
        return moved

    def to_unix_ns(self, boot_ns: int) -> int:
        return boot_ns + self._offset_ns
