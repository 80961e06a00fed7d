"""OTLP trace export of encoded requests: http/protobuf on a kept-alive connection, or gRPC.

The request bytes come ready from the pipeline (gotel encodes spans itself, see otlp_encode),
so sending is the whole job: compression, headers, TLS, the collector's answer (success,
partial success, retryable or not, Retry-After). Retrying is the pipeline's business.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import gotel
from gotel.errors import GotelError
from gotel.export.base import SUCCESS, ExportResult
from gotel.export.otlp_config import (
    COMPRESSION_ADAPTIVE,
    COMPRESSION_GZIP,
    METRICS,
    PROTOCOL_GRPC,
    TRACES,
    OtlpSettings,
    resolve_settings,
)
from gotel.export.protobuf import DecodeError, fields, signed64

logger = logging.getLogger(__name__)

GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
GRPC_METHODS = {
    TRACES: GRPC_METHOD,
    METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}
USER_AGENT = f"gotel/{gotel.__version__}"
# OTLP/HTTP: these statuses mean "try again later" (specification, "Retryable Response Codes").
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
# gzip level 1: a third of level 6's CPU for nearly the same size on span data.
GZIP_LEVEL = 1


def parse_response(body: bytes) -> tuple[int, str]:
    """ExportTraceServiceResponse -> (rejected spans, error message) of its partial success."""
    rejected, message = 0, ""
    try:
        for number, _wire, value in fields(body):
            if number != 1:
                continue
            for inner, _w, item in fields(value):
                if inner == 1:
                    rejected = signed64(item)
                elif inner == 2:
                    message = bytes(item).decode("utf-8", "replace")
    except DecodeError:
        return 0, ""
    return rejected, message


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class HttpTransport:
    """POSTs to the traces URL over one persistent connection, reopened after any error."""

    def __init__(self, settings: OtlpSettings) -> None:
        url = urlsplit(settings.endpoint)
        self._https = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._https else 80)
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._timeout = settings.timeout_s
        self._context = settings.ssl_context()
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": USER_AGENT,
            **settings.headers,
        }
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def send(self, body: bytes, *, compress: bool) -> ExportResult:
        headers = dict(self._headers)
        if compress:
            body = gzip.compress(body, GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return ExportResult(False, _describe_os_error(exc), retryable=True)
        if response.will_close:
            self.close()
        status = response.status
        if 200 <= status < 300:
            rejected, message = parse_response(payload)
            if rejected:
                return ExportResult(True, message or "partial success", rejected=rejected)
            return SUCCESS
        reason = f"HTTP {status} {response.reason}".strip()
        detail = payload[:200].decode("utf-8", "replace").strip()
        if detail and response.getheader("Content-Type", "").startswith(("text/", "application/j")):
            reason += f": {detail}"
        return ExportResult(
            False,
            reason,
            retryable=status in RETRYABLE_HTTP,
            retry_after_s=_retry_after(response.getheader("Retry-After")),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


class GrpcTransport:
    """Unary TraceService/Export calls carrying the encoded request as it is."""

    # OTLP/gRPC: the codes worth retrying (specification, "OTLP/gRPC Throttling").
    _RETRYABLE = (
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
    )

    def __init__(self, settings: OtlpSettings, method: str = GRPC_METHOD) -> None:
        import grpc  # only when chosen: it is a large import

        self._grpc = grpc
        url = urlsplit(settings.endpoint)
        target = f"{url.hostname}:{url.port or (443 if settings.tls else 80)}"
        options = [("grpc.primary_user_agent", USER_AGENT)]
        if settings.tls:

            def read(path: str | None) -> bytes | None:
                if path is None:
                    return None
                try:
                    with open(path, "rb") as f:
                        return f.read()
                except OSError as exc:
                    raise GotelError(f"otlp exporter: cannot read {path}: {exc.strerror}") from exc

            credentials = grpc.ssl_channel_credentials(
                read(settings.certificate),
                read(settings.client_key),
                read(settings.client_certificate),
            )
            self._channel = grpc.secure_channel(target, credentials, options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        # No serializers: the request is already bytes, and the answer is parsed here.
        self._call = self._channel.unary_unary(method)
        self._metadata = tuple(settings.headers.items())
        self._timeout = settings.timeout_s
        self._retryable = {getattr(grpc.StatusCode, name) for name in self._RETRYABLE}

    def send(self, body: bytes, *, compress: bool) -> ExportResult:
        grpc = self._grpc
        compression = grpc.Compression.Gzip if compress else grpc.Compression.NoCompression
        try:
            answer = self._call(
                body, timeout=self._timeout, metadata=self._metadata, compression=compression
            )
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else ""
            name = code.name if code is not None else "UNKNOWN"
            return ExportResult(
                False,
                f"grpc {name}: {details or ''}".strip(": "),
                retryable=code in self._retryable,
            )
        rejected, message = parse_response(answer or b"")
        if rejected:
            return ExportResult(True, message or "partial success", rejected=rejected)
        return SUCCESS

    def close(self) -> None:
        self._channel.close()


class OtlpExporter:
    """OTLP exporter (http/protobuf or grpc) of encoded requests: returns results, never raises."""

    def __init__(self, *, environ: Mapping[str, str] | None = None, signal: str = TRACES) -> None:
        """`signal`: traces (ExportTraceServiceRequest) or metrics (ExportMetricsServiceRequest):
        which variables configure it, which path or gRPC service receives it."""
        import os

        self.settings = resolve_settings(os.environ if environ is None else environ, signal)
        self._transport: Any
        if self.settings.protocol == PROTOCOL_GRPC:
            self._transport = GrpcTransport(self.settings, GRPC_METHODS[signal])
        else:
            self._transport = HttpTransport(self.settings)
        self.endpoint = self.settings.endpoint
        self.protocol = self.settings.protocol
        self._closed = False
        self.sent_bytes = 0  # on the wire, after compression
        self.requests = 0
        self.send_seconds = 0.0  # wall time spent sending (waiting for the collector included)
        logger.debug(
            "otlp exporter: %s to %s, timeout %.3fs, compression %s",
            self.settings.protocol,
            self.settings.endpoint,
            self.settings.timeout_s,
            self.settings.compression,
        )

    @property
    def what(self) -> str:
        return f"otlp {self.settings.protocol} {self.settings.endpoint}"

    def export(self, request: bytes, spans: int, *, behind: bool = False) -> ExportResult:
        if self._closed:
            return ExportResult(False, "exporter shut down")
        mode = self.settings.compression
        compress = mode == COMPRESSION_GZIP or (mode == COMPRESSION_ADAPTIVE and behind)
        started = time.monotonic()
        try:
            result = self._transport.send(request, compress=compress)
        except Exception as exc:  # telemetry must not crash the agent
            result = ExportResult(False, f"{type(exc).__name__}: {exc}"[:300], retryable=True)
        self.send_seconds += time.monotonic() - started
        self.requests += 1
        return result

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._transport.close()
        except Exception as exc:
            logger.debug("otlp exporter: shutdown: %s", exc)
