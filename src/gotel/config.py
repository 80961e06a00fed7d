"""One frozen Config from command-line flags and OTEL_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gotel.errors import GotelError
from gotel.export.pipeline import PipelineLimits
from gotel.sampling import Sampler, sampler_from_env
from gotel.trace import env as names

EXPORTERS = ("otlp", "console", "jsonl", "none")
ENV_TRACES_EXPORTER = names.OTEL_TRACES_EXPORTER
DEFAULT_METRIC_INTERVAL_MS = 60_000  # the OpenTelemetry SDKs' default
DEFAULT_METRIC_SERIES = 2000  # the SDKs' default cardinality limit per metric


@dataclass(frozen=True)
class MetricsConfig:
    exporter: str = "none"  # otlp | console | jsonl | none (none: not even counted)
    output: str | None = None  # jsonl file; stdout when None
    interval_s: float = DEFAULT_METRIC_INTERVAL_MS / 1000
    series_limit: int = DEFAULT_METRIC_SERIES

    @property
    def enabled(self) -> bool:
        return self.exporter != "none"


@dataclass(frozen=True)
class Config:
    exporter: str = "otlp"
    output: str | None = None  # jsonl file; stdout when None
    service_name: str | None = None  # None: OTEL_SERVICE_NAME, else the executable's name
    poll_interval_s: float = 0.02  # ring buffers are drained on this timer (no wakeups)
    ring_buffer_bytes: int = 8 << 20  # per probe and process; absorbs bursts between drains
    watch_interval_s: float = 0.25  # how often --exe looks for new processes
    sampler: Sampler = field(default_factory=Sampler)
    export_limits: PipelineLimits = field(default_factory=PipelineLimits)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def make_config(
    *,
    exporter: str | None = None,
    output: str | None = None,
    service_name: str | None = None,
    metrics_output: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    env = os.environ if env is None else env
    kind = exporter or _first(env.get(ENV_TRACES_EXPORTER, "")) or "otlp"
    if kind not in EXPORTERS:
        raise GotelError(f"unknown exporter '{kind}' (expected {', '.join(EXPORTERS)})")
    if output and kind != "jsonl":
        raise GotelError("--output is only used with --exporter jsonl")
    return Config(
        exporter=kind,
        output=output,
        service_name=service_name,
        sampler=sampler_from_env(env),
        export_limits=export_limits_from_env(env),
        metrics=metrics_config_from_env(env, kind, metrics_output),
    )


def metrics_config_from_env(
    env: Mapping[str, str], traces_exporter: str, output: str | None = None
) -> MetricsConfig:
    """OTEL_METRICS_EXPORTER (unset: otlp when spans go over OTLP, else none, so that a
    console or file user is not sent to a collector they did not ask for),
    OTEL_METRIC_EXPORT_INTERVAL (ms), GOTEL_METRICS_CARDINALITY_LIMIT."""
    raw = _first(env.get(names.OTEL_METRICS_EXPORTER, ""))
    kind = raw or ("otlp" if traces_exporter == "otlp" else "none")
    if kind not in EXPORTERS:
        raise GotelError(
            f"{names.OTEL_METRICS_EXPORTER}={raw!r}: unknown exporter "
            f"(expected {', '.join(EXPORTERS)})"
        )
    if output and kind != "jsonl":
        raise GotelError("--metrics-output is only used with OTEL_METRICS_EXPORTER=jsonl")
    interval = _positive_int(env, names.OTEL_METRIC_EXPORT_INTERVAL) or DEFAULT_METRIC_INTERVAL_MS
    limit = _positive_int(env, names.GOTEL_METRICS_CARDINALITY_LIMIT) or DEFAULT_METRIC_SERIES
    return MetricsConfig(kind, output, interval / 1000, limit)


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise GotelError(f"{name}={raw!r}: expected a positive whole number")
    return int(raw)


def export_limits_from_env(env: Mapping[str, str]) -> PipelineLimits:
    """The export pipeline's bounds, with the batch span processor's variables where set.

    OTEL_BSP_MAX_EXPORT_BATCH_SIZE sets the batch that triggers a request (requests grow to
    four times that while export is behind); OTEL_BSP_MAX_QUEUE_SIZE the spans that may wait;
    OTEL_BSP_SCHEDULE_DELAY (ms) how long a partial batch waits.
    """
    default = PipelineLimits()
    queue = _positive_int(env, names.OTEL_BSP_MAX_QUEUE_SIZE) or default.max_queue_spans
    batch = _positive_int(env, names.OTEL_BSP_MAX_EXPORT_BATCH_SIZE)
    if batch is None:
        batch, most = default.batch_spans, default.max_batch_spans
    else:
        most = 4 * batch
    batch = min(batch, queue)
    delay_ms = _positive_int(env, names.OTEL_BSP_SCHEDULE_DELAY)
    return PipelineLimits(
        batch_spans=batch,
        max_batch_spans=max(batch, min(most, queue)),
        max_queue_spans=queue,
        interval_s=delay_ms / 1000 if delay_ms else default.interval_s,
    )


def _first(value: str) -> str:
    """OTEL_TRACES_EXPORTER is a comma list; gotel exports to the first one."""
    return value.split(",")[0].strip().lower()
