"""Exporters that write text: `console` for a person at a terminal, `jsonl` for programs."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from gotel.errors import GotelError
from gotel.export.base import SUCCESS, ExportResult
from gotel.export.otlp_decode import decode_request
from gotel.export.records import span_record
from gotel.trace.span import Span

logger = logging.getLogger(__name__)


class _TextExporter:
    """Decodes each request and writes it in one piece under a lock; failures are results."""

    def __init__(self, stream: TextIO, what: str, *, owns_stream: bool) -> None:
        self._stream = stream
        self._owns_stream = owns_stream
        self._lock = threading.Lock()
        self.what = what
        self._closed = False

    def _render(self, resource: Mapping[str, Any], spans: Sequence[Span]) -> str:
        raise NotImplementedError

    def export(self, request: bytes, spans: int, *, behind: bool = False) -> ExportResult:
        if not spans:
            return SUCCESS
        try:
            text = "".join(self._render(res, found) for res, found in decode_request(request))
            with self._lock:
                if self._closed:
                    return ExportResult(False, "exporter shut down")
                # One write per batch: with O_APPEND, lines from two exporters do not interleave.
                self._stream.write(text)
                self._stream.flush()
        except Exception as exc:  # a closed pipe or a full disk must not stop the agent
            return ExportResult(False, f"{type(exc).__name__}: {exc}")
        return SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._owns_stream:
                    self._stream.close()
                else:
                    self._stream.flush()
            except Exception as exc:
                logger.debug("closing span output: %s", exc)


class JsonLinesExporter(_TextExporter):
    """One JSON object per span per line (schema: gotel.export.records.span_record)."""

    def __init__(self, output: str | None, stream: TextIO) -> None:
        if output is None:
            super().__init__(stream, "jsonl <stdout>", owns_stream=False)
            return
        try:
            # Append: several sessions (or restarts) may share one file.
            file = open(output, "a", encoding="utf-8")  # closed by shutdown()
        except OSError as exc:
            raise GotelError(f"jsonl output {output}: cannot open ({exc.strerror})") from exc
        super().__init__(file, f"jsonl {output}", owns_stream=True)

    def _render(self, resource: Mapping[str, Any], spans: Sequence[Span]) -> str:
        return "".join(
            json.dumps(span_record(span, resource), ensure_ascii=False) + "\n" for span in spans
        )


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # quoted: "200" and 200 look different
    return str(value)


def format_span(span: Span) -> str:
    """A readable block: headline, ids, status, then the attributes sorted by key."""
    parent = span.parent_id
    lines = [
        f"{span.name}  {span.kind.name}  {span.duration_ns() / 1e6:.3f} ms  [{span.scope}]",
        f"  trace  {span.trace_id.hex()}",
        f"  span   {span.span_id.hex()}  parent {parent.hex() if parent else '-'}"
        + ("  (remote)" if parent and span.remote_parent else ""),
    ]
    if span.error:
        lines.append("  status ERROR" + (f": {span.status_message}" if span.status_message else ""))
    else:
        lines.append("  status UNSET")
    width = max((len(k) for k in span.attributes), default=0)
    lines.extend(
        f"  {key.ljust(width)} = {_format_value(span.attributes[key])}"
        for key in sorted(span.attributes)
    )
    return "\n".join(lines) + "\n\n"


class ConsoleExporter(_TextExporter):
    """Human-readable blocks, one per span, for someone watching a terminal."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream, "console", owns_stream=False)

    def _render(self, resource: Mapping[str, Any], spans: Sequence[Span]) -> str:
        return "".join(format_span(span) for span in spans)
