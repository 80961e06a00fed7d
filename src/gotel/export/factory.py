"""create_exporter: the one place an exporter name (flag or OTEL_TRACES_EXPORTER) becomes one."""

from __future__ import annotations

import sys
from typing import TextIO

from gotel.errors import GotelError
from gotel.export.base import NoneExporter, SpanExporter
from gotel.export.files import ConsoleExporter, JsonLinesExporter
from gotel.export.otlp import OtlpExporter

EXPORTER_KINDS = ("otlp", "console", "jsonl", "none")


def create_exporter(
    kind: str,
    *,
    output: str | None = None,
    stream: TextIO | None = None,
) -> SpanExporter:
    """Build the exporter `kind` names. `output` is the jsonl file (default: `stream`);
    `stream` defaults to sys.stdout as it is at call time (so test capture works).

    Raises GotelError for an unknown kind or unusable configuration; the exporter returned
    never raises.
    """
    name = kind.strip().lower()
    out = sys.stdout if stream is None else stream
    if name == "otlp":
        return OtlpExporter()
    if name == "console":
        return ConsoleExporter(out)
    if name == "jsonl":
        return JsonLinesExporter(output, out)
    if name == "none":
        return NoneExporter()
    raise GotelError(f"unknown exporter {kind!r} (expected otlp, console, jsonl or none)")
