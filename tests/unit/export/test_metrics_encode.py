"""gotel's OTLP metrics encoder against the OpenTelemetry Python SDK's: the same histograms,
decoded with opentelemetry-proto, compared message by message; and read back by the tests'
receiver the way the e2e tests read what gotel sends."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

import gotel
from gotel.export.metrics_export import MetricsPusher, OtlpMetricExporter
from gotel.export.metrics_export import metric_records as gotel_records
from gotel.export.otlp_metrics import encode_metrics_request
from gotel.instrumentation.metric import OVERFLOW_ATTRIBUTE, REQUEST_DURATION_BOUNDS
from gotel.metrics import HistogramMetric, HistogramSeries, ProcessMetrics
from otlp_receiver import Receiver, metric_records

START, NOW = 1_700_000_000_000_000_000, 1_700_000_060_123_456_789
RESOURCE = {"service.name": "checkout", "process.pid": 4242, "telemetry.sdk.language": "go"}
BUCKETS = (3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)  # one beyond the last bound
SERIES = [
    HistogramSeries(
        {"http.request.method": "GET", "http.route": "/hello/{id}",
         "http.response.status_code": 200, "url.scheme": "http"},
        5, 12_345_678_901, BUCKETS,
    ),
    HistogramSeries({OVERFLOW_ATTRIBUTE: True}, 2, 3_000_000, (2,) + (0,) * 14),
]
RPC = HistogramSeries(
    {"rpc.system": "grpc", "rpc.service": "grpc.health.v1.Health", "rpc.method": "Check",
     "rpc.grpc.status_code": 0},
    1, 250_000, (1,) + (0,) * 14,
)


def processes() -> list[ProcessMetrics]:
    return [ProcessMetrics(RESOURCE, START, NOW, [
        HistogramMetric("http.server.request.duration", "Duration of HTTP server requests.",
                        "s", REQUEST_DURATION_BOUNDS, "gotel/net/http", SERIES),
        HistogramMetric("rpc.client.duration", "Duration of outbound RPCs.", "s",
                        REQUEST_DURATION_BOUNDS, "gotel/google.golang.org/grpc", [RPC]),
        # No requests yet: no metric at all, as the SDK leaves out an instrument without points.
        HistogramMetric("http.client.request.duration", "", "s", REQUEST_DURATION_BOUNDS,
                        "gotel/net/http", []),
    ])]


def sdk_request() -> ExportMetricsServiceRequest:
    def metric(name: str, description: str, series: list[HistogramSeries]) -> Metric:
        points = [HistogramDataPoint(dict(s.attributes), START, NOW, s.count, s.sum_ns / 1e9,
                                     list(s.buckets), list(REQUEST_DURATION_BOUNDS), 0.0, 0.0)
                  for s in series]
        return Metric(name, description, "s",
                      Histogram(points, AggregationTemporality.CUMULATIVE))

    http = metric("http.server.request.duration", "Duration of HTTP server requests.", SERIES)
    rpc = metric("rpc.client.duration", "Duration of outbound RPCs.", [RPC])
    version = gotel.__version__
    data = MetricsData([ResourceMetrics(Resource(RESOURCE), [
        ScopeMetrics(InstrumentationScope("gotel/net/http", version), [http], ""),
        ScopeMetrics(InstrumentationScope("gotel/google.golang.org/grpc", version), [rpc], ""),
    ], "")])
    request = encode_metrics(data)
    # gotel does not track min and max (optional fields): drop them from the SDK's request.
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for m in scope_metrics.metrics:
                for point in m.histogram.data_points:
                    point.ClearField("min")
                    point.ClearField("max")
    return request


def test_histograms_decode_to_what_the_sdk_encodes():
    ours = ExportMetricsServiceRequest.FromString(encode_metrics_request(processes()))
    assert ours == sdk_request()
    point = ours.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0]
    assert point.sum == 12.345678901
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1


def test_receiver_reads_back_every_point():
    request = ExportMetricsServiceRequest.FromString(encode_metrics_request(processes()))
    records = metric_records(request, "http")
    assert [(r["name"], r["count"]) for r in records] == [
        ("http.server.request.duration", 5),
        ("http.server.request.duration", 2),
        ("rpc.client.duration", 1),
    ]
    first = records[0]
    assert first["temporality"] == "cumulative"
    assert first["kind"] == "histogram"
    assert first["unit"] == "s"
    assert first["resource"] == RESOURCE
    assert first["start_time_unix_nano"] == START and first["time_unix_nano"] == NOW
    assert first["bucket_counts"] == list(BUCKETS)
    assert first["explicit_bounds"] == list(REQUEST_DURATION_BOUNDS)
    assert records[1]["attributes"] == {OVERFLOW_ATTRIBUTE: True}
    # gotel's own jsonl records say the same as the receiver's decoding.
    for mine, theirs in zip(gotel_records(processes()), records, strict=True):
        for key in ("name", "unit", "scope", "attributes", "count", "sum", "bucket_counts",
                    "explicit_bounds", "resource", "temporality"):
            assert mine[key] == theirs[key], key


def test_nothing_measured_encodes_an_empty_request():
    empty = [ProcessMetrics(RESOURCE, START, NOW, [HistogramMetric(
        "http.server.request.duration", "", "s", REQUEST_DURATION_BOUNDS, "gotel/net/http")])]
    assert encode_metrics_request(empty) == b""


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_the_otlp_metric_exporter_reaches_a_real_receiver(protocol, monkeypatch):
    with Receiver() as receiver:
        for name, value in receiver.otlp_env(protocol).items():
            monkeypatch.setenv(name, value)
        pusher = MetricsPusher(OtlpMetricExporter())
        pusher.submit(processes())
        assert pusher.flush()
        pusher.shutdown()
        assert (pusher.exports, pusher.failed) == (1, 0)
        points = receiver.latest_points("http.server.request.duration")
        assert sorted(p["count"] for p in points) == [2, 5]
        assert {p["transport"] for p in points} == {"grpc" if protocol == "grpc" else "http"}
