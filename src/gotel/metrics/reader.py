"""Reads the RED histograms of one BPF object (include/red_metrics.h) into HistogramMetric,
one per process the object counts for (its key's pid).

Per-CPU values are added up, keys decoded from the object's BTF (struct red_key) and turned
into attributes by the probe's Metric; keys that give the same attributes are merged. The
series that counted requests finding the map full carries otel.metric.overflow=true.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Collection
from typing import Any

from gotel.ebpf import BpfObject
from gotel.instrumentation.metric import OVERFLOW_ATTRIBUTE, Metric
from gotel.metrics.data import HistogramMetric, HistogramSeries

log = logging.getLogger(__name__)

SERIES_MAP = "red_metrics"
OVERFLOW_MAP = "red_overflow"
KEY_STRUCT = "red_key"
VALUE_STRUCT = "red_histogram"
BOUNDS_CONST = "red_bounds_ns"
BOUND_COUNT_CONST = "red_bound_count"
ENABLED_CONST = "red_metrics_on"
MAX_BOUNDS = 16  # RED_MAX_BOUNDS: the length of red_bounds_ns


def metric_constants(metric: Metric) -> dict[str, int | bytes]:
    """The `volatile const` bucket boundaries an object with red_metrics.h counts with."""
    bounds = metric.bounds_ns()
    if not 0 < len(bounds) <= MAX_BOUNDS or bounds != sorted(bounds):
        raise ValueError(f"metric {metric.name}: 1..{MAX_BOUNDS} ascending bounds needed")
    return {
        BOUNDS_CONST: b"".join(b.to_bytes(8, "little") for b in bounds),
        BOUND_COUNT_CONST: len(bounds),
        ENABLED_CONST: 1,
    }


class MetricReader:
    """One loaded object's histogram map, read on demand (each read is a full snapshot)."""

    def __init__(self, obj: BpfObject, metric: Metric, scope: str) -> None:
        self.obj = obj
        self.metric = metric
        self.scope = scope
        self._key = obj.struct_layout(KEY_STRUCT).decoder()
        value = obj.struct_layout(VALUE_STRUCT)
        self._value_words = value.size // 8  # count, sum_ns, buckets[]
        self._buckets = len(metric.bounds_s) + 1
        # Requests counted in each process's overflow series, as of the last read.
        self.overflowed: dict[int, int] = {}
        self.undescribable = 0  # keys the probe's attributes function failed on

    def _sum_cpus(self, raw: bytes) -> list[int]:
        words = self._value_words
        values = (ctypes.c_uint64 * (len(raw) // 8)).from_buffer_copy(raw)
        total = [0] * words
        for cpu in range(len(values) // words):
            base = cpu * words
            for i in range(words):
                total[i] += values[base + i]
        return total

    def read_by_pid(self, pids: Collection[int] | None = None) -> dict[int, HistogramMetric]:
        """Each process's series (of `pids`, default all): one object counts for every
        process whose binary shares its layout, each series keyed by pid."""
        merged: dict[int, dict[tuple[tuple[str, Any], ...], list[int]]] = {}
        for key in self.obj.keys(SERIES_MAP):
            pid = int.from_bytes(key[:4], "little")  # red_key.pid, its first member
            if pids is not None and pid not in pids:
                continue
            raw = self.obj.lookup(SERIES_MAP, key)
            if raw is None:
                continue
            try:
                attributes = self.metric.attributes(self._key(key))
            except Exception as exc:  # a probe's bug must not stop the other series
                self.undescribable += 1
                log.debug("%s: undescribable series: %s", self.metric.name, exc)
                continue
            by_attrs = merged.setdefault(pid, {})
            self._merge(by_attrs, tuple(sorted(attributes.items())), self._sum_cpus(raw))
        for key in self.obj.keys(OVERFLOW_MAP):
            pid = int.from_bytes(key, "little")
            raw = self.obj.lookup(OVERFLOW_MAP, key) if pids is None or pid in pids else None
            if raw is None:
                continue
            counts = self._sum_cpus(raw)
            if not counts[0]:
                continue
            if counts[0] > self.overflowed.get(pid, 0):
                log.warning(
                    "%s: pid %d: %d requests over the cardinality limit (%d series) counted "
                    "as otel.metric.overflow=true",
                    self.metric.name,
                    pid,
                    counts[0] - self.overflowed.get(pid, 0),
                    self.obj.max_entries(SERIES_MAP),
                )
            self.overflowed[pid] = counts[0]
            self._merge(merged.setdefault(pid, {}), ((OVERFLOW_ATTRIBUTE, True),), counts)
        buckets = self._buckets
        return {
            pid: self._metric([
                HistogramSeries(dict(attrs), total[0], total[1], tuple(total[2 : 2 + buckets]))
                for attrs, total in by_attrs.items()
                if total[0]
            ])
            for pid, by_attrs in merged.items()
        }

    def forget(self, pid: int) -> None:
        """Remove a detached process's series (after its last read): they would hold room
        under the cardinality limit for good, and a later process with its pid would
        inherit them."""
        for key in self.obj.keys(SERIES_MAP):
            if int.from_bytes(key[:4], "little") == pid:
                self.obj.delete(SERIES_MAP, key)
        self.obj.delete(OVERFLOW_MAP, pid.to_bytes(4, "little"))
        self.overflowed.pop(pid, None)

    def _metric(self, series: list[HistogramSeries]) -> HistogramMetric:
        metric = self.metric
        return HistogramMetric(
            metric.name, metric.description, metric.unit, metric.bounds_s, self.scope, series
        )

    @staticmethod
    def _merge(merged: dict[Any, list[int]], attrs: Any, total: list[int]) -> None:
        have = merged.get(attrs)
        if have is None:
            merged[attrs] = total
        else:
            for i, value in enumerate(total):
                have[i] += value
