"""RED metrics: histograms the BPF objects aggregate, read every export interval."""

from gotel.metrics.data import HistogramMetric, HistogramSeries, ProcessMetrics
from gotel.metrics.reader import MetricReader

__all__ = ["HistogramMetric", "HistogramSeries", "MetricReader", "ProcessMetrics"]
