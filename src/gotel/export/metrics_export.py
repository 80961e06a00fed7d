"""Where RED metrics go: OTLP (http/protobuf or grpc), console, jsonl or nowhere.

Every export interval the supervisor reads each process's histograms (cumulative) and hands
them to `MetricsPusher`, whose thread sends them, so a slow collector never delays the
draining of the ring buffers. Cumulative points make a lost export harmless: the next one
carries everything; a snapshot that finds the previous one still queued replaces it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol, TextIO

from gotel.errors import GotelError
from gotel.export.base import SUCCESS, ExportResult
from gotel.export.otlp import OtlpExporter
from gotel.export.otlp_config import METRICS
from gotel.export.otlp_metrics import encode_metrics_request
from gotel.metrics.data import ProcessMetrics

log = logging.getLogger(__name__)

METRIC_EXPORTERS = ("otlp", "console", "jsonl", "none")


class MetricExporter(Protocol):
    """Sends one snapshot of every process's metrics. Never raises."""

    what: str

    def export(self, processes: Sequence[ProcessMetrics]) -> ExportResult: ...

    def shutdown(self) -> None: ...


class OtlpMetricExporter:
    def __init__(self) -> None:
        self._otlp = OtlpExporter(signal=METRICS)
        self.what = f"metrics: otlp {self._otlp.protocol} {self._otlp.endpoint}"

    def export(self, processes: Sequence[ProcessMetrics]) -> ExportResult:
        request = encode_metrics_request(processes)
        if not request:
            return SUCCESS
        return self._otlp.export(request, sum(p.points for p in processes))

    def shutdown(self) -> None:
        self._otlp.shutdown()


def metric_records(processes: Sequence[ProcessMetrics]) -> list[dict[str, Any]]:
    """One flat record per histogram point (the jsonl schema)."""
    records = []
    for process in processes:
        for metric in process.metrics:
            for series in metric.series:
                records.append(
                    {
                        "name": metric.name,
                        "unit": metric.unit,
                        "scope": metric.scope,
                        "temporality": "cumulative",
                        "start_time_unix_nano": process.start_ns,
                        "time_unix_nano": process.time_ns,
                        "attributes": dict(series.attributes),
                        "count": series.count,
                        "sum": series.sum_ns / 1e9,
                        "bucket_counts": list(series.buckets),
                        "explicit_bounds": list(metric.bounds_s),
                        "resource": dict(process.resource),
                    }
                )
    return records


class _TextMetricExporter:
    def __init__(self, stream: TextIO, what: str, *, owns_stream: bool) -> None:
        self._stream = stream
        self._owns = owns_stream
        self.what = what

    def _render(self, records: list[dict[str, Any]]) -> str:
        raise NotImplementedError

    def export(self, processes: Sequence[ProcessMetrics]) -> ExportResult:
        records = metric_records(processes)
        if not records:
            return SUCCESS
        try:
            self._stream.write(self._render(records))
            self._stream.flush()
        except Exception as exc:  # a closed pipe or a full disk must not stop the agent
            return ExportResult(False, f"{type(exc).__name__}: {exc}")
        return SUCCESS

    def shutdown(self) -> None:
        try:
            if self._owns:
                self._stream.close()
            else:
                self._stream.flush()
        except Exception as exc:
            log.debug("closing metrics output: %s", exc)


class JsonLinesMetricExporter(_TextMetricExporter):
    def __init__(self, output: str | None, stream: TextIO) -> None:
        if output is None:
            super().__init__(stream, "metrics: jsonl <stdout>", owns_stream=False)
            return
        try:
            file = open(output, "a", encoding="utf-8")  # closed by shutdown()
        except OSError as exc:
            raise GotelError(f"metrics output {output}: cannot open ({exc.strerror})") from exc
        super().__init__(file, f"metrics: jsonl {output}", owns_stream=True)

    def _render(self, records: list[dict[str, Any]]) -> str:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


class ConsoleMetricExporter(_TextMetricExporter):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream, "metrics: console", owns_stream=False)

    def _render(self, records: list[dict[str, Any]]) -> str:
        lines = []
        for r in records:
            attrs = " ".join(f"{k}={v}" for k, v in sorted(r["attributes"].items()))
            mean_ms = r["sum"] / r["count"] * 1000 if r["count"] else 0.0
            lines.append(
                f"{r['name']}  pid {r['resource'].get('process.pid')}  {attrs}  "
                f"count={r['count']} sum={r['sum']:.6f}s mean={mean_ms:.3f}ms"
            )
        return "\n".join(lines) + "\n\n"


def create_metric_exporter(
    kind: str, *, output: str | None = None, stream: TextIO | None = None
) -> MetricExporter | None:
    """The exporter `kind` names; None for "none" (metrics are then not counted at all)."""
    import sys

    out = sys.stdout if stream is None else stream
    if kind == "otlp":
        return OtlpMetricExporter()
    if kind == "console":
        return ConsoleMetricExporter(out)
    if kind == "jsonl":
        return JsonLinesMetricExporter(output, out)
    if kind == "none":
        return None
    raise GotelError(f"unknown metrics exporter {kind!r} (expected {', '.join(METRIC_EXPORTERS)})")


class MetricsPusher:
    """One thread sending the latest snapshot; `flush` waits until what was submitted is sent."""

    def __init__(self, exporter: MetricExporter) -> None:
        self.exporter = exporter
        self.exports = 0
        self.failed = 0
        self.replaced = 0  # snapshots superseded before they were sent (cumulative: no loss)
        self._pending: list[ProcessMetrics] | None = None
        self._sending = False
        self._stopping = False
        self._cond = threading.Condition()
        self._streak = 0  # failed exports in a row: the first is logged, then the recovery
        self._thread = threading.Thread(target=self._run, name="gotel-metrics", daemon=True)
        self._thread.start()

    def submit(self, processes: list[ProcessMetrics]) -> None:
        with self._cond:
            if self._pending is not None:
                self.replaced += 1
            self._pending = processes
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._pending is None:
                    return
                batch, self._pending = self._pending, None
                self._sending = True
            result = self.exporter.export(batch)
            with self._cond:
                self._sending = False
                self.exports += 1
                self._cond.notify_all()
            if result.ok:
                if self._streak:
                    log.info("%s: export recovered after %d failure(s)", self.exporter.what,
                             self._streak)
                self._streak = 0
            else:
                self.failed += 1
                if not self._streak:
                    log.warning(
                        "%s: export failed: %s (the next export carries the same cumulative "
                        "counts; further failures are not logged until one succeeds)",
                        self.exporter.what,
                        result.reason,
                    )
                self._streak += 1

    def flush(self, timeout: float = 15.0) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._pending is None and not self._sending, timeout
            )

    def shutdown(self, timeout: float = 15.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.exporter.shutdown()
