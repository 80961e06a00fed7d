"""One frozen Config from command-line flags and OTEL_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gotel.errors import GotelError
from gotel.sampling import Sampler, sampler_from_env

EXPORTERS = ("otlp", "console", "jsonl", "none")
ENV_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"


@dataclass(frozen=True)
class Config:
    exporter: str = "otlp"
    output: str | None = None  # jsonl file; stdout when None
    service_name: str | None = None  # None: OTEL_SERVICE_NAME, else the executable's name
    poll_interval_s: float = 0.02  # ring buffers are drained on this timer (no wakeups)
    ring_buffer_bytes: int = 8 << 20  # per probe and process; absorbs bursts between drains
    watch_interval_s: float = 0.25  # how often --exe looks for new processes
    sampler: Sampler = field(default_factory=Sampler)


def make_config(
    *,
    exporter: str | None = None,
    output: str | None = None,
    service_name: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    env = os.environ if env is None else env
    kind = exporter or _first(env.get(ENV_TRACES_EXPORTER, "")) or "otlp"
    if kind not in EXPORTERS:
        raise GotelError(f"unknown exporter '{kind}' (expected {', '.join(EXPORTERS)})")
    if output and kind != "jsonl":
        raise GotelError("--output is only used with --exporter jsonl")
    return Config(
        exporter=kind, output=output, service_name=service_name, sampler=sampler_from_env(env)
    )


def _first(value: str) -> str:
    """OTEL_TRACES_EXPORTER is a comma list; gotel exports to the first one."""
    return value.split(",")[0].strip().lower()
