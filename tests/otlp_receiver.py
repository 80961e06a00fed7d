#!/usr/bin/env python3
"""A real OTLP trace and metrics receiver for end-to-end tests, run as a separate process.

    python tests/otlp_receiver.py --http-port 0 --grpc-port 0 --out spans.jsonl \
        --metrics-out metrics.jsonl

Serves OTLP/HTTP (`POST /v1/traces` and `/v1/metrics`, protobuf or JSON, optionally
gzip/deflate) and OTLP/gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`,
`opentelemetry.proto.collector.metrics.v1.MetricsService/Export`) on 127.0.0.1, decoding with
opentelemetry-proto. Appends one JSON line per received span, in the schema of gotel's jsonl
exporter plus "transport", and one per metric data point (see `metric_records`).
Prints `ready http=PORT grpc=PORT` once listening; exits cleanly on SIGTERM or SIGINT.

`Receiver` (below) runs it from pytest.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
GRPC_METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
_REMOTE_KNOWN = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


# --- decoding -------------------------------------------------------------------------------
def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def span_records(request: Any, transport: str) -> list[dict[str, Any]]:
    """ExportTraceServiceRequest -> flat records (the gotel jsonl schema + transport)."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    records = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                status_name = Status.StatusCode.Name(span.status.code)
                record = {
                    "name": span.name,
                    "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "remote_parent": bool(span.flags & _REMOTE_KNOWN and span.flags & _REMOTE),
                    "start_time_unix_nano": span.start_time_unix_nano,
                    "end_time_unix_nano": span.end_time_unix_nano,
                    "duration_ns": span.end_time_unix_nano - span.start_time_unix_nano,
                    "attributes": _attributes(span.attributes),
                    "status": {
                        "code": status_name.removeprefix("STATUS_CODE_"),
                        "message": span.status.message,
                    },
                    "resource": resource,
                    "scope": scope_spans.scope.name,
                    "scope_version": scope_spans.scope.version,
                    "transport": transport,
                }
                if span.links:  # as gotel's jsonl writes them: only when there are some
                    record["links"] = [{"trace_id": link.trace_id.hex(),
                                        "span_id": link.span_id.hex()} for link in span.links]
                records.append(record)
    return records


def metric_records(request: Any, transport: str) -> list[dict[str, Any]]:
    """ExportMetricsServiceRequest -> one flat record per data point. Histograms carry count,
    sum, bucket_counts and explicit_bounds; sums and gauges their value."""
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

    records = []
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                temporality = getattr(data, "aggregation_temporality", 0)
                for point in data.data_points:
                    record = {
                        "name": metric.name,
                        "description": metric.description,
                        "unit": metric.unit,
                        "kind": kind,
                        "temporality": AggregationTemporality.Name(temporality)
                        .removeprefix("AGGREGATION_TEMPORALITY_")
                        .lower(),
                        "start_time_unix_nano": point.start_time_unix_nano,
                        "time_unix_nano": point.time_unix_nano,
                        "attributes": _attributes(point.attributes),
                        "resource": resource,
                        "scope": scope_metrics.scope.name,
                        "scope_version": scope_metrics.scope.version,
                        "transport": transport,
                    }
                    if kind == "histogram":
                        record.update(
                            count=point.count,
                            sum=point.sum if point.HasField("sum") else None,
                            bucket_counts=list(point.bucket_counts),
                            explicit_bounds=list(point.explicit_bounds),
                        )
                    else:
                        record["value"] = getattr(point, point.WhichOneof("value") or "as_int")
                    records.append(record)
    return records


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes trace and span ids as hex, protobuf's JSON mapping expects base64."""
    if isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _hex_ids_to_base64(value)


class SpanWriter:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # closed in close()
        self._lock = threading.Lock()

    def write(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self._lock:
            self._file.write(text)
            self._file.flush()  # the test polls the file

    def close(self) -> None:
        with self._lock:
            self._file.close()


# --- OTLP/HTTP ------------------------------------------------------------------------------
def make_http_server(
    port: int, writer: SpanWriter, metrics_writer: SpanWriter
) -> ThreadingHTTPServer:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    # path -> (request type, response type, records, where they go)
    signals = {
        TRACES_PATH: (ExportTraceServiceRequest, ExportTraceServiceResponse, span_records, writer),
        METRICS_PATH: (
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse,
            metric_records,
            metrics_writer,
        ),
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as exporters use a connection pool

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            signal = signals.get(self.path.split("?")[0])
            if signal is None:
                self._reply(404, b"not found", "text/plain")
                return
            request_type, response_type, records, out = signal
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            is_json = (self.headers.get("Content-Type") or "").startswith("application/json")
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = request_type()
                if is_json:
                    document = json.loads(body)
                    _hex_ids_to_base64(document)
                    json_format.ParseDict(document, request)
                else:
                    request.ParseFromString(body)
            except Exception as exc:
                self._reply(400, f"bad request: {exc}".encode(), "text/plain")
                return
            out.write(records(request, "http"))
            response = response_type()
            if is_json:
                self._reply(200, json_format.MessageToJson(response).encode(), "application/json")
            else:
                self._reply(200, response.SerializeToString(), "application/x-protobuf")

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


# --- OTLP/gRPC ------------------------------------------------------------------------------
def make_grpc_server(
    port: int, writer: SpanWriter, metrics_writer: SpanWriter
) -> tuple[Any, int]:
    import grpc
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    def export(request: Any, context: Any) -> Any:
        writer.write(span_records(request, "grpc"))
        return ExportTraceServiceResponse()

    def export_metrics(request: Any, context: Any) -> Any:
        metrics_writer.write(metric_records(request, "grpc"))
        return ExportMetricsServiceResponse()

    metrics_handler = grpc.method_handlers_generic_handler(
        GRPC_METRICS_SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export_metrics,
                request_deserializer=ExportMetricsServiceRequest.FromString,
                response_serializer=ExportMetricsServiceResponse.SerializeToString,
            )
        },
    )

    handler = grpc.method_handlers_generic_handler(
        GRPC_SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=ExportTraceServiceRequest.FromString,
                response_serializer=ExportTraceServiceResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler, metrics_handler))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if not bound:
        raise OSError(f"grpc: cannot listen on 127.0.0.1:{port}")
    return server, bound


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, default=0, help="0: pick a free port")
    parser.add_argument("--grpc-port", type=int, default=0, help="0: pick a free port")
    parser.add_argument("--out", required=True, help="JSON lines file, appended to")
    parser.add_argument("--metrics-out", help="JSON lines file for metric points (default: "
                        "metrics.jsonl beside --out)")
    args = parser.parse_args(argv)
    metrics_out = args.metrics_out or str(Path(args.out).with_name("metrics.jsonl"))

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    writer = SpanWriter(args.out)
    metrics_writer = SpanWriter(metrics_out)
    http_server = make_http_server(args.http_port, writer, metrics_writer)
    grpc_server, grpc_port = make_grpc_server(args.grpc_port, writer, metrics_writer)
    grpc_server.start()
    http_thread = threading.Thread(target=http_server.serve_forever, name="otlp-http")
    http_thread.start()
    print(f"ready http={http_server.server_address[1]} grpc={grpc_port}", flush=True)

    while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
        pass
    http_server.shutdown()
    http_server.server_close()
    http_thread.join()
    grpc_server.stop(grace=1.0).wait()
    writer.close()
    metrics_writer.close()
    return 0


# --- pytest helper --------------------------------------------------------------------------
class Receiver:
    """Runs the receiver process for a test: `with Receiver() as r: ... r.spans(wait_for=2)`."""

    def __init__(
        self,
        out: str | os.PathLike[str] | None = None,
        start_timeout: float = 20.0,
        *,
        http_port: int = 0,
        grpc_port: int = 0,
    ):
        """`http_port`/`grpc_port` 0: free ports; a given one lets a test restart a receiver
        where its exporter already points. `out` is appended to, so a restart keeps the
        spans received before."""
        self._tmpdir: str | None = None
        if out is None:
            self._tmpdir = tempfile.mkdtemp(prefix="otlp-receiver-")
            out = os.path.join(self._tmpdir, "spans.jsonl")
        self.out = Path(out)
        self.metrics_out = self.out.with_name(self.out.stem + ".metrics.jsonl")
        self.stderr_path = self.out.with_name(self.out.name + ".stderr")
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self.http_port = http_port
        self.grpc_port = grpc_port

    @property
    def http_endpoint(self) -> str:
        """Base URL for OTEL_EXPORTER_OTLP_ENDPOINT (exporters append /v1/traces)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        """The http:// scheme also tells the gRPC exporter to use plaintext."""
        return f"http://127.0.0.1:{self.grpc_port}"

    def otlp_env(self, protocol: str = "http/protobuf") -> dict[str, str]:
        """Environment that points an OTLP exporter (or gotel itself) at this receiver."""
        endpoint = self.grpc_endpoint if protocol == "grpc" else self.http_endpoint
        return {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}

    def __enter__(self) -> Receiver:
        self.out.touch()
        self.metrics_out.touch()
        # stderr to a file, not a pipe nobody reads (a full pipe would block the receiver).
        command = [sys.executable, __file__, "--http-port", str(self.http_port)]
        command += ["--grpc-port", str(self.grpc_port)]
        with open(self.stderr_path, "w") as stderr:
            self._proc = subprocess.Popen(
                [*command, "--out", str(self.out), "--metrics-out", str(self.metrics_out)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        stdout = self._proc.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self._start_timeout)
        if not line or not line[0].startswith("ready "):
            detail = self.stderr_path.read_text(errors="replace")[-2000:]
            self.__exit__(None, None, None)
            raise RuntimeError(
                f"otlp receiver did not start: {line[0] if line else 'timeout'}\n{detail}"
            )
        fields = dict(part.split("=", 1) for part in line[0].split()[1:])
        self.http_port, self.grpc_port = int(fields["http"]), int(fields["grpc"])
        return self

    def __exit__(self, *exc_info: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def read(self) -> list[dict[str, Any]]:
        """Every span received so far (complete lines only)."""
        text = self.out.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def metric_points(self) -> list[dict[str, Any]]:
        """Every metric data point received so far (complete lines only)."""
        text = self.metrics_out.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def latest_points(
        self, name: str, *, pid: int | None = None, after_ns: int = 0
    ) -> list[dict[str, Any]]:
        """The newest point of each series of metric `name` (cumulative: the newest holds all),
        among exports made after `after_ns`; `pid`: of that process only."""
        latest: dict[str, dict[str, Any]] = {}
        for point in self.metric_points():
            if point["name"] != name or point["time_unix_nano"] < after_ns:
                continue
            if pid is not None and point["resource"].get("process.pid") != pid:
                continue
            key = json.dumps([point["resource"], point["attributes"]], sort_keys=True)
            if key not in latest or point["time_unix_nano"] >= latest[key]["time_unix_nano"]:
                latest[key] = point
        return list(latest.values())

    def spans(
        self,
        wait_for: int = 1,
        timeout: float = 10.0,
        *,
        where: Callable[[dict[str, Any]], bool] | None = None,
        trace_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until at least `wait_for` matching spans arrived; raise AssertionError if not."""

        def matching() -> list[dict[str, Any]]:
            found = self.read()
            if trace_id is not None:
                found = [s for s in found if s["trace_id"] == trace_id]
            if where is not None:
                found = [s for s in found if where(s)]
            return found

        deadline = time.monotonic() + timeout
        while True:
            found = matching()
            if len(found) >= wait_for:
                return found
            if time.monotonic() >= deadline:
                names = [s["name"] for s in found]
                raise AssertionError(
                    f"expected {wait_for} span(s) within {timeout}s, got {len(found)}: {names}"
                )
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
