"""OTLP export (http/protobuf or grpc) through the opentelemetry-python exporters.

Our Span becomes an SDK ReadableSpan with an explicit SpanContext, so the ids decided in the
kernel go out unchanged; the exporters then read the rest of OTEL_EXPORTER_OTLP_* themselves
(endpoint, headers, certificates, insecure).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace import SpanKind as OtelSpanKind
from opentelemetry.trace.status import Status, StatusCode

import gotel
from gotel.errors import GotelError
from gotel.export.base import FailureStreak
from gotel.trace.env import (
    OTEL_EXPORTER_OTLP_COMPRESSION,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
)
from gotel.trace.span import SPAN_ID_LEN, TRACE_ID_LEN, Span

logger = logging.getLogger(__name__)

PROTOCOL_HTTP = "http/protobuf"
PROTOCOL_GRPC = "grpc"
DEFAULT_TIMEOUT_MS = 10_000
_SUSPICIOUS_TIMEOUT_MS = 100  # below this, the value was probably meant as seconds

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Loggers of the exporter libraries. They log every failed batch and every retry; during our
# export calls their records are captured so that we log once per failure streak, with their
# reason (and pass them on at DEBUG).
_LIBRARY_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)


class _LibraryLogCapture(logging.Filter):
    """Swallows library log records emitted on a thread that is inside capture()."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()
        self._install_lock = threading.Lock()
        self._installed = False

    def filter(self, record: logging.LogRecord) -> bool:
        records = getattr(self._local, "records", None)
        if records is None:
            return True
        records.append(record)
        return False

    def _install(self) -> None:
        with self._install_lock:
            if not self._installed:
                for name in _LIBRARY_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True

    @contextmanager
    def capture(self) -> Iterator[list[logging.LogRecord]]:
        self._install()
        records: list[logging.LogRecord] = []
        self._local.records = records
        try:
            yield records
        finally:
            self._local.records = None
            for record in records:
                logger.debug("otlp library: %s", record.getMessage())


_capture = _LibraryLogCapture()


def resolve_protocol(environ: Mapping[str, str]) -> str:
    """http/protobuf (the default) or grpc; the signal-specific variable wins."""
    for name in (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if raw.lower() not in (PROTOCOL_HTTP, PROTOCOL_GRPC):
            raise GotelError(f"{name}={raw!r}: protocol not supported (use http/protobuf or grpc)")
        return raw.lower()
    return PROTOCOL_HTTP


def resolve_timeout_s(environ: Mapping[str, str]) -> float:
    """The export timeout in seconds, read as milliseconds as the specification says."""
    for name in (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            millis = float(raw)
        except ValueError:
            millis = -1.0
        if not millis > 0:
            raise GotelError(f"{name}={raw!r}: expected a positive number of milliseconds")
        if millis < _SUSPICIOUS_TIMEOUT_MS:
            logger.warning(
                "%s=%s is read as milliseconds, as the OpenTelemetry specification says "
                "(for %s seconds write %d)",
                name,
                raw,
                raw,
                int(millis * 1000),
            )
        return millis / 1000.0
    return DEFAULT_TIMEOUT_MS / 1000.0


def resolve_compression(environ: Mapping[str, str]) -> str:
    """The compression, gzip or none (the values the specification defines)."""
    for name in (OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, OTEL_EXPORTER_OTLP_COMPRESSION):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if raw.lower() not in ("gzip", "none"):
            raise GotelError(f"{name}={raw!r}: expected gzip or none")
        return raw.lower()
    return "none"


def _attribute_value(value: Any) -> Any:
    # OTLP ints are int64; the encoder fails the whole batch on a bigger one.
    if isinstance(value, int) and not isinstance(value, bool):
        if not _INT64_MIN <= value <= _INT64_MAX:
            return str(value)
    return value


def to_otel_resource(resource: Mapping[str, Any]) -> Resource:
    # Resource(...) rather than Resource.create(...): create() would merge in the Python SDK's
    # own telemetry.sdk.* and service.name defaults, which describe the agent, not the target.
    return Resource(dict(resource))


class SpanConverter:
    """gotel Span -> SDK ReadableSpan. One Resource object and one scope object per name, so the
    encoder groups a batch into one ResourceSpans and one ScopeSpans per scope."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self.resource = to_otel_resource(resource)
        self._scopes: dict[str, InstrumentationScope] = {}

    def _scope(self, name: str) -> InstrumentationScope:
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = InstrumentationScope(name, gotel.__version__)
        return scope

    def convert(self, span: Span) -> ReadableSpan:
        """Raises ValueError for a span whose ids cannot be valid on the wire."""
        if len(span.trace_id) != TRACE_ID_LEN or not any(span.trace_id):
            raise ValueError(f"trace id {span.trace_id.hex()!r} is not 16 non-zero bytes")
        if len(span.span_id) != SPAN_ID_LEN or not any(span.span_id):
            raise ValueError(f"span id {span.span_id.hex()!r} is not 8 non-zero bytes")
        trace_id = int.from_bytes(span.trace_id, "big")
        flags = TraceFlags(TraceFlags.SAMPLED if span.sampled else TraceFlags.DEFAULT)
        context = SpanContext(
            trace_id, int.from_bytes(span.span_id, "big"), is_remote=False, trace_flags=flags
        )
        parent_id = span.parent_id
        parent = None
        if parent_id is not None:
            if len(parent_id) != SPAN_ID_LEN:
                raise ValueError(f"parent span id {parent_id.hex()!r} is not 8 bytes")
            parent = SpanContext(
                trace_id,
                int.from_bytes(parent_id, "big"),
                is_remote=span.remote_parent,
                trace_flags=flags,
            )
        # A description is only allowed with ERROR (the SDK warns otherwise).
        status = (
            Status(StatusCode.ERROR, span.status_message or None)
            if span.error
            else Status(StatusCode.UNSET)
        )
        return ReadableSpan(
            name=span.name,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes={k: _attribute_value(v) for k, v in span.attributes.items()},
            kind=OtelSpanKind[span.kind.name],
            status=status,
            start_time=span.start_ns,
            end_time=span.end_ns,
            instrumentation_scope=self._scope(span.scope),
        )


def _make_inner(protocol: str, timeout_s: float, compression: str) -> Any:
    # Imported here: each pulls in its transport (requests / grpcio), needed only when chosen.
    # Timeout and compression are passed explicitly; see resolve_timeout_s/resolve_compression.
    if protocol == PROTOCOL_GRPC:
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        grpc_compression = (
            grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
        )
        return GrpcExporter(timeout=timeout_s, compression=grpc_compression)
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(timeout=timeout_s, compression=HttpCompression(compression))


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")


def _describe_http_result(result: Any) -> str | None:
    """Why an OTLP/HTTP export failed, from the client's result object."""
    status = getattr(result, "status_code", None)
    if status is not None:
        return f"HTTP {status} {getattr(result, 'reason', None) or ''}".strip()
    error = getattr(result, "error", None)
    if error is None:
        return None
    # requests nests the cause deep in a long message; the errno text is the useful part.
    text = str(error)
    match = _ERRNO.search(text)
    return f"{type(error).__name__}: {match.group(0) if match else text}"


class _HttpResultTap:
    """Remembers the last result of the HTTP exporter's client, per thread.

    The HTTP exporter logs only "failed ... due to timeout, max retries or shutdown" when a
    retryable error (connection refused) runs out of time; the cause is in the client's result.
    This wraps a private attribute, so it is optional: without it we fall back to the logs.
    """

    def __init__(self, inner: Any) -> None:
        self._local = threading.local()
        client = getattr(inner, "_client", None)
        export = getattr(client, "export", None)
        if not callable(export):
            return

        def tapped(data: bytes) -> Any:
            result = export(data)
            self._local.result = result
            return result

        client.export = tapped

    def take(self) -> Any:
        result = getattr(self._local, "result", None)
        self._local.result = None
        return result


class OtlpExporter:
    """OTLP span exporter: returns False on failure, never raises."""

    def __init__(
        self, resource: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        self.protocol = resolve_protocol(env)
        self.timeout_s = resolve_timeout_s(env)
        self.compression = resolve_compression(env)
        self._converter = SpanConverter(resource)
        try:
            self._inner = _make_inner(self.protocol, self.timeout_s, self.compression)
        except Exception as exc:  # bad OTEL_EXPORTER_OTLP_* values surface here
            raise GotelError(f"otlp exporter ({self.protocol}): cannot configure: {exc}") from exc
        self.endpoint = str(getattr(self._inner, "_endpoint", "?"))
        self._tap = _HttpResultTap(self._inner) if self.protocol == PROTOCOL_HTTP else None
        self._failures = FailureStreak(f"otlp {self.protocol} {self.endpoint}", logger)
        self._invalid_spans = 0
        self._closed = False
        logger.debug(
            "otlp exporter: %s to %s, timeout %.3fs", self.protocol, self.endpoint, self.timeout_s
        )

    @property
    def failed_spans(self) -> int:
        return self._failures.failed_spans

    @property
    def invalid_spans(self) -> int:
        return self._invalid_spans

    def _convert(self, spans: Sequence[Span]) -> list[ReadableSpan]:
        converted: list[ReadableSpan] = []
        for span in spans:
            try:
                converted.append(self._converter.convert(span))
            except ValueError as exc:
                self._invalid_spans += 1
                if self._invalid_spans == 1:
                    logger.warning(
                        "otlp exporter: dropping span %r: %s (reported once)", span.name, exc
                    )
        return converted

    def export(self, spans: Sequence[Span]) -> bool:
        if self._closed:
            return False
        readable = self._convert(spans)
        if not readable:
            return True
        try:
            with _capture.capture() as records:
                result = self._inner.export(readable)
        except Exception as exc:  # telemetry must not crash the agent
            self._failures.failure(f"{type(exc).__name__}: {exc}"[:500], len(readable))
            return False
        described = _describe_http_result(self._tap.take()) if self._tap else None
        if result == SpanExportResult.SUCCESS:
            self._failures.success()
            return True
        problems = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
        reason = described or (problems[-1] if problems else "the exporter reported a failure")
        self._failures.failure(reason[:500], len(readable))
        return False

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with _capture.capture():
                self._inner.shutdown()
        except Exception as exc:
            logger.debug("otlp exporter: shutdown: %s", exc)
