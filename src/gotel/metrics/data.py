"""RED metrics as plain data: cumulative histograms of one process, ready to encode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HistogramSeries:
    """One attribute set's cumulative histogram; `buckets` has len(bounds) + 1 counts."""

    attributes: Mapping[str, Any]
    count: int
    sum_ns: int
    buckets: tuple[int, ...]


@dataclass(frozen=True)
class HistogramMetric:
    name: str
    description: str
    unit: str
    bounds_s: tuple[float, ...]
    scope: str  # instrumentation scope name, e.g. "gotel/net/http"
    series: list[HistogramSeries] = field(default_factory=list)


@dataclass(frozen=True)
class ProcessMetrics:
    """What one target process measured since `start_ns` (wall clock), as of `time_ns`."""

    resource: Mapping[str, Any]
    start_ns: int
    time_ns: int
    metrics: list[HistogramMetric]

    @property
    def points(self) -> int:
        return sum(len(m.series) for m in self.metrics)
