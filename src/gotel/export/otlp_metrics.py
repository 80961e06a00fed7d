"""OTLP metric messages (ExportMetricsServiceRequest) encoded straight to protobuf bytes.

Field numbers follow opentelemetry-proto (metrics/v1/metrics.proto,
collector/metrics/v1/metrics_service.proto). RED histograms are explicit-bucket histograms
with cumulative temporality: the kernel's counts only grow while a process is attached.
"""

from __future__ import annotations

from collections.abc import Sequence

import gotel
from gotel.export.otlp_encode import encode_resource, encode_scope, key_value
from gotel.export.protobuf import (
    FIXED64,
    LENGTH_DELIMITED,
    VARINT,
    double,
    fixed64,
    length_delimited,
    tag,
    varint,
)
from gotel.metrics.data import HistogramMetric, HistogramSeries, ProcessMetrics

_REQUEST_RESOURCE_METRICS = tag(1, LENGTH_DELIMITED)
_RESOURCE_METRICS_RESOURCE = tag(1, LENGTH_DELIMITED)
_RESOURCE_METRICS_SCOPE_METRICS = tag(2, LENGTH_DELIMITED)
_SCOPE_METRICS_SCOPE = tag(1, LENGTH_DELIMITED)
_SCOPE_METRICS_METRIC = tag(2, LENGTH_DELIMITED)
_METRIC_NAME = tag(1, LENGTH_DELIMITED)
_METRIC_DESCRIPTION = tag(2, LENGTH_DELIMITED)
_METRIC_UNIT = tag(3, LENGTH_DELIMITED)
_METRIC_HISTOGRAM = tag(9, LENGTH_DELIMITED)
_HISTOGRAM_POINT = tag(1, LENGTH_DELIMITED)
_HISTOGRAM_TEMPORALITY = tag(2, VARINT)
_POINT_START = tag(2, FIXED64)
_POINT_TIME = tag(3, FIXED64)
_POINT_COUNT = tag(4, FIXED64)
_POINT_SUM = tag(5, FIXED64)  # a double
_POINT_BUCKETS = tag(6, LENGTH_DELIMITED)  # packed fixed64
_POINT_BOUNDS = tag(7, LENGTH_DELIMITED)  # packed double
_POINT_ATTRIBUTE = tag(9, LENGTH_DELIMITED)
TEMPORALITY_CUMULATIVE = 2  # AGGREGATION_TEMPORALITY_CUMULATIVE


def histogram_point(
    series: HistogramSeries, bounds: bytes, start_ns: int, time_ns: int
) -> bytes:
    """A complete `Histogram.data_points` field; `bounds`: the packed explicit_bounds."""
    parts = [key_value(_POINT_ATTRIBUTE, k, v) for k, v in series.attributes.items()]
    parts += (
        _POINT_START,
        fixed64(start_ns),
        _POINT_TIME,
        fixed64(time_ns),
        _POINT_COUNT,
        fixed64(series.count),
        _POINT_SUM,
        double(series.sum_ns / 1e9),
        length_delimited(_POINT_BUCKETS, b"".join(fixed64(n) for n in series.buckets)),
        length_delimited(_POINT_BOUNDS, bounds),
    )
    return length_delimited(_HISTOGRAM_POINT, b"".join(parts))


def histogram_metric(metric: HistogramMetric, start_ns: int, time_ns: int) -> bytes:
    """A complete `ScopeMetrics.metrics` field."""
    bounds = b"".join(double(b) for b in metric.bounds_s)
    points = b"".join(histogram_point(s, bounds, start_ns, time_ns) for s in metric.series)
    histogram = points + _HISTOGRAM_TEMPORALITY + varint(TEMPORALITY_CUMULATIVE)
    body = (
        length_delimited(_METRIC_NAME, metric.name.encode())
        + length_delimited(_METRIC_DESCRIPTION, metric.description.encode())
        + length_delimited(_METRIC_UNIT, metric.unit.encode())
        + length_delimited(_METRIC_HISTOGRAM, histogram)
    )
    return length_delimited(_SCOPE_METRICS_METRIC, body)


def resource_metrics(process: ProcessMetrics) -> bytes:
    """A complete `ExportMetricsServiceRequest.resource_metrics` field (b"": no data)."""
    by_scope: dict[str, list[bytes]] = {}
    for metric in process.metrics:
        if metric.series:
            by_scope.setdefault(metric.scope, []).append(
                histogram_metric(metric, process.start_ns, process.time_ns)
            )
    if not by_scope:
        return b""
    scopes = b"".join(
        length_delimited(
            _RESOURCE_METRICS_SCOPE_METRICS,
            length_delimited(_SCOPE_METRICS_SCOPE, encode_scope(scope, gotel.__version__))
            + b"".join(metrics),
        )
        for scope, metrics in by_scope.items()
    )
    resource = length_delimited(_RESOURCE_METRICS_RESOURCE, encode_resource(process.resource))
    return length_delimited(_REQUEST_RESOURCE_METRICS, resource + scopes)


def encode_metrics_request(processes: Sequence[ProcessMetrics]) -> bytes:
    """An ExportMetricsServiceRequest with every process's histograms."""
    return b"".join(resource_metrics(p) for p in processes)
