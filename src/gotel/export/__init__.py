"""Exporters behind one narrow interface: export(spans) -> bool, shutdown(); never raising."""

from gotel.export.base import NoneExporter, SpanExporter
from gotel.export.batching import BatchingExporter
from gotel.export.factory import EXPORTER_KINDS, create_exporter
from gotel.export.files import ConsoleExporter, JsonLinesExporter, format_span
from gotel.export.otlp import OtlpExporter, SpanConverter
from gotel.export.records import span_record

__all__ = [
    "EXPORTER_KINDS",
    "BatchingExporter",
    "ConsoleExporter",
    "JsonLinesExporter",
    "NoneExporter",
    "OtlpExporter",
    "SpanConverter",
    "SpanExporter",
    "create_exporter",
    "format_span",
    "span_record",
]
