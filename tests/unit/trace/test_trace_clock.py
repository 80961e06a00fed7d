"""BootClock: CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) -> unix epoch ns."""

from __future__ import annotations

import time

from gotel.trace import BootClock

MILLISECOND = 1_000_000


def test_boot_time_now_converts_to_wall_clock_now() -> None:
    clock = BootClock()
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    wall = time.time_ns()
    assert abs(clock.to_unix_ns(boot) - wall) < MILLISECOND


def test_offset_is_realtime_minus_boottime() -> None:
    clock = BootClock()
    expected = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(
        time.CLOCK_BOOTTIME
    )
    assert abs(clock.offset_ns - expected) < MILLISECOND
    assert clock.to_unix_ns(0) == clock.offset_ns  # boot time 0 is the boot instant


def test_refresh_without_a_clock_step_barely_moves() -> None:
    clock = BootClock(samples=3)
    before = clock.offset_ns
    moved = clock.refresh()
    assert abs(moved) < MILLISECOND
    assert clock.offset_ns == before + moved
