"""Which variables configure metrics: OTEL_METRICS_EXPORTER and its default, the interval,
the cardinality limit, and the OTLP metrics endpoint, protocol and headers."""

from __future__ import annotations

import pytest

from gotel.config import make_config, metrics_config_from_env
from gotel.errors import GotelError
from gotel.export.otlp_config import METRICS, resolve_settings


def test_metrics_follow_otlp_traces_unless_told_otherwise():
    assert make_config(env={}).metrics.exporter == "otlp"
    assert make_config(exporter="console", env={}).metrics.exporter == "none"
    assert make_config(exporter="none", env={"OTEL_METRICS_EXPORTER": "console"}).metrics \
        .exporter == "console"
    off = make_config(env={"OTEL_METRICS_EXPORTER": "none"}).metrics
    assert not off.enabled


def test_interval_limit_and_output():
    config = metrics_config_from_env(
        {"OTEL_METRIC_EXPORT_INTERVAL": "1500", "GOTEL_METRICS_CARDINALITY_LIMIT": "7",
         "OTEL_METRICS_EXPORTER": "jsonl"}, "otlp", "m.jsonl")
    assert (config.interval_s, config.series_limit, config.output) == (1.5, 7, "m.jsonl")
    default = metrics_config_from_env({}, "otlp")
    assert (default.interval_s, default.series_limit) == (60.0, 2000)


@pytest.mark.parametrize("env", [
    {"OTEL_METRICS_EXPORTER": "prometheus"},
    {"OTEL_METRIC_EXPORT_INTERVAL": "soon"},
    {"OTEL_METRIC_EXPORT_INTERVAL": "0"},
    {"GOTEL_METRICS_CARDINALITY_LIMIT": "-1"},
])
def test_bad_values_are_one_clear_error(env):
    with pytest.raises(GotelError, match=next(iter(env))):
        metrics_config_from_env(env, "otlp")
    with pytest.raises(GotelError, match="--metrics-output"):
        metrics_config_from_env({}, "otlp", "file")


def test_otlp_metrics_endpoint_protocol_and_headers():
    generic = resolve_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, METRICS)
    assert generic.endpoint == "http://collector:4318/v1/metrics"
    own = resolve_settings({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9090/in",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",  # the traces' own: not for metrics
        "OTEL_EXPORTER_OTLP_HEADERS": "a=1,b=2",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "b=3",
    }, METRICS)
    assert own.endpoint == "http://metrics:9090/in"
    assert own.protocol == "http/protobuf"
    assert own.headers == {"a": "1", "b": "3"}
    grpc = resolve_settings({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, METRICS)
    assert (grpc.protocol, grpc.endpoint) == ("grpc", "http://localhost:4317")
    traces = resolve_settings({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"})
    assert traces.protocol == "http/protobuf"
