"""Where the demo's spans go and are read back from: Jaeger (built by gotel.demos.emojivoto.
build) or, as the fallback, the receiver of this package (gotel.demos.emojivoto.receiver)."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.parse
from pathlib import Path

from gotel.demos.emojivoto.build import JAEGER_LABEL
from gotel.demos.emojivoto.processes import Processes, free_port, get_json
from gotel.demos.emojivoto.traces import TraceSpan, spans_from_jaeger
from gotel.errors import GotelError

START_TIMEOUT_S = 60.0
RECEIVER_MODULE = "gotel.demos.emojivoto.receiver"  # run with -m, not imported here


class Backend:
    label = ""
    otlp_endpoint = ""  # OTLP/HTTP base URL for OTEL_EXPORTER_OTLP_ENDPOINT
    where = ""  # where a user can look while it runs
    pid = 0

    def start(self, procs: Processes, run_dir: Path) -> None:
        raise NotImplementedError

    def spans(self, since_us: int) -> list[TraceSpan]:
        raise NotImplementedError


_JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerBackend(Backend):
    label = JAEGER_LABEL

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.query = ""

    def start(self, procs: Processes, run_dir: Path) -> None:
        ports = {"query_http": free_port(), "query_grpc": free_port(), "otlp_http": free_port()}
        config = run_dir / "jaeger.yaml"
        config.write_text(_JAEGER_CONFIG.format(**ports))
        proc = procs.start("jaeger", [str(self.binary), "--config", str(config)])
        self.pid = proc.pid
        self.query = f"http://127.0.0.1:{ports['query_http']}"
        self.otlp_endpoint = f"http://127.0.0.1:{ports['otlp_http']}"
        self.where = f"query API {self.query}/api/traces?service=web"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise GotelError(
                    f"emojivoto: jaeger exited ({proc.returncode}): {procs.tail('jaeger')}"
                )
            try:
                get_json(self.query + "/api/services", timeout=1)
                with socket.create_connection(("127.0.0.1", ports["otlp_http"]), timeout=1):
                    return
            except (OSError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise GotelError(
                        "emojivoto: jaeger did not start in time: " + procs.tail("jaeger")
                    ) from exc
                time.sleep(0.2)

    def spans(self, since_us: int) -> list[TraceSpan]:
        services = get_json(self.query + "/api/services").get("data") or []
        seen: dict[tuple[str, str], TraceSpan] = {}
        for service in services:
            query = urllib.parse.urlencode(
                {
                    "service": service,
                    "start": since_us,
                    "end": int(time.time() * 1e6) + 10**6,
                    "limit": 20000,
                }
            )
            for span in spans_from_jaeger(get_json(f"{self.query}/api/traces?{query}", 30)):
                seen[(span.trace_id, span.span_id)] = span
        return list(seen.values())


class ReceiverBackend(Backend):
    label = "gotel's OTLP receiver (gotel.demos.emojivoto.receiver, a JSON lines file)"

    def __init__(self) -> None:
        self.file = Path()

    def start(self, procs: Processes, run_dir: Path) -> None:
        self.file = run_dir / "received.jsonl"
        self.file.touch()
        argv = [sys.executable, "-m", RECEIVER_MODULE, "--out", str(self.file)]
        proc = procs.start("otlp-receiver", argv)
        self.pid = proc.pid
        ready = procs.wait_for_line("otlp-receiver", proc, r"^ready http=(\d+)", START_TIMEOUT_S)
        self.otlp_endpoint = f"http://127.0.0.1:{ready.group(1)}"
        self.where = str(self.file)

    def spans(self, since_us: int) -> list[TraceSpan]:
        lines = self.file.read_text(encoding="utf-8").splitlines(keepends=True)
        return [TraceSpan(**json.loads(x)) for x in lines if x.endswith("\n")]
