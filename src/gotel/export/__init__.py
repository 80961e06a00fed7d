"""Export: spans encoded as OTLP, queued, and sent by one exporter behind a narrow interface
(export(request) -> ExportResult, shutdown(); never raising)."""

from gotel.export.base import ExportResult, NoneExporter, SpanExporter
from gotel.export.factory import EXPORTER_KINDS, create_exporter
from gotel.export.files import ConsoleExporter, JsonLinesExporter, format_span
from gotel.export.otlp import OtlpExporter
from gotel.export.pipeline import ExportPipeline, PipelineLimits, SpanChunk
from gotel.export.records import span_record

__all__ = [
    "EXPORTER_KINDS",
    "ConsoleExporter",
    "ExportPipeline",
    "ExportResult",
    "JsonLinesExporter",
    "NoneExporter",
    "OtlpExporter",
    "PipelineLimits",
    "SpanChunk",
    "SpanExporter",
    "create_exporter",
    "format_span",
    "span_record",
]
