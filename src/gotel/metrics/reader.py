"""Reads the RED histograms of one BPF object (include/red_metrics.h) into HistogramMetric.

Per-CPU values are added up, keys decoded from the object's BTF (struct red_key) and turned
into attributes by the probe's Metric; keys that give the same attributes are merged. The
series that counted requests finding the map full carries otel.metric.overflow=true.
"""

from __future__ import annotations

import ctypes
import logging
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
        self.overflowed = 0  # requests counted in the overflow series, as of the last read
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

    def read(self) -> HistogramMetric:
        merged: dict[tuple[tuple[str, Any], ...], list[int]] = {}
        for key in self.obj.keys(SERIES_MAP):
            raw = self.obj.lookup(SERIES_MAP, key)
            if raw is None:
                continue
            try:
                attributes = self.metric.attributes(self._key(key))
            except Exception as exc:  # a probe's bug must not stop the other series
                self.undescribable += 1
                log.debug("%s: undescribable series: %s", self.metric.name, exc)
                continue
            self._merge(merged, tuple(sorted(attributes.items())), self._sum_cpus(raw))
        overflow = self.obj.lookup(OVERFLOW_MAP, (0).to_bytes(4, "little"))
        if overflow is not None:
            counts = self._sum_cpus(overflow)
            if counts[0]:
                if counts[0] > self.overflowed:
                    log.warning(
                        "%s: %d requests over the cardinality limit (%d series) counted as "
                        "otel.metric.overflow=true",
                        self.metric.name,
                        counts[0] - self.overflowed,
                        self.obj.max_entries(SERIES_MAP),
                    )
                self.overflowed = counts[0]
                self._merge(merged, ((OVERFLOW_ATTRIBUTE, True),), counts)
        metric = self.metric
        series = [
            HistogramSeries(dict(attrs), total[0], total[1], tuple(total[2 : 2 + self._buckets]))
            for attrs, total in merged.items()
            if total[0]
        ]
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
