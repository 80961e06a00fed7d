"""Runs the sessions of every target process: attach, drain on a timer, watch, detach."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gotel.config import Config
from gotel.errors import GotelError, TargetError
from gotel.export import ExportPipeline, create_exporter
from gotel.export.metrics_export import MetricsPusher, create_metric_exporter
from gotel.export.otlp_encode import encode_resource
from gotel.goelf import open_binary
from gotel.instrumentation.extension import Extension, format_counters
from gotel.instrumentation.probe import Probe
from gotel.instrumentation.registry import all_extensions
from gotel.metrics import ProcessMetrics
from gotel.planning import plan_probes
from gotel.session import NodeMaps, Session
from gotel.target import Process, is_alive, pids_running, process_from_pid
from gotel.trace import BootClock, build_resource

log = logging.getLogger(__name__)

LOST_CHECK_INTERVAL_S = 2.0


@dataclass
class Totals:
    """Over every session this supervisor ran, closed ones included."""

    events: int = 0
    spans: int = 0
    lost: int = 0
    spilled: int = 0
    sessions: int = 0
    drain_cpu_s: float = 0.0
    decode_cpu_s: float = 0.0
    describe_cpu_s: float = 0.0
    encode_cpu_s: float = 0.0


class Supervisor:
    def __init__(self, config: Config, probes: list[Probe],
                 extensions: list[Extension] | None = None) -> None:
        self.config = config
        self.probes = probes
        self.extensions = all_extensions() if extensions is None else extensions
        self.clock = BootClock()
        self.sessions: dict[int, Session] = {}
        # State that crosses processes (node_* maps), shared by every session.
        self.node_maps = NodeMaps()
        self.totals = Totals()
        # One pipeline for every process: one connection to the collector, requests that
        # carry the spans of several processes, one bound on the memory they take.
        self.pipeline = ExportPipeline(
            create_exporter(config.exporter, output=config.output), config.export_limits
        )
        metrics = config.metrics
        exporter = create_metric_exporter(metrics.exporter, output=metrics.output)
        self.metrics = MetricsPusher(exporter) if exporter is not None else None
        # The last read of each process detached since the previous export.
        self._final_metrics: list[ProcessMetrics] = []
        self._watched: list[Path | str] = []
        self._ignored: set[int] = set()
        self._closed = False

    # -- targets ----------------------------------------------------------------
    def attach(self, process: Process, *, pid_filter: int | None = None) -> Session:
        """Instrument one process. Raises GotelError when no probe could attach."""
        with open_binary(process.binary) as binary:
            plans = plan_probes(binary, self.probes)
            go_version = binary.go_version
        resource = build_resource(
            executable=process.executable_path,
            pid=process.pid,
            go_version=go_version,
            service_name=self.config.service_name,
            extra={},
        )
        session = Session(
            process,
            plans,
            self.pipeline,
            self.clock,
            resource=encode_resource(resource),
            pid_filter=pid_filter,
            common_constants=self.config.sampler.constants(),
            ring_buffer_bytes=self.config.ring_buffer_bytes,
            extensions=self.extensions,
            resource_attributes=resource,
            metric_series_limit=self.config.metrics.series_limit if self.metrics else 0,
            node_maps=self.node_maps,
        )
        session.attach()
        if not session.attached:
            reasons = "; ".join(f"{k}: {v}" for k, v in session.stats.skipped.items())
            raise TargetError(f"pid {process.pid}: no probe could attach ({reasons})")
        self.sessions[process.pid] = session
        self.totals.sessions += 1
        return session

    def watch(self, executable: Path | str) -> None:
        """Instrument every process running `executable`, now and whenever one starts."""
        self._watched.append(executable)
        self._scan()

    def _scan(self) -> None:
        for exe in self._watched:
            try:
                pids = pids_running(exe)
            except OSError as exc:
                log.warning("cannot watch %s: %s", exe, exc)
                continue
            for pid in pids:
                if pid in self.sessions or pid in self._ignored:
                    continue
                try:
                    self.attach(process_from_pid(pid))
                except GotelError as exc:
                    self._ignored.add(pid)
                    log.warning("%s", exc)

    # -- loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event, *, exit_when_idle: bool = True) -> None:
        """Drain until `stop` is set, or (exit_when_idle) until no target is left."""
        next_lost = next_watch = time.monotonic()
        next_metrics = next_lost + self.config.metrics.interval_s
        while not stop.is_set():
            busy = False
            for session in list(self.sessions.values()):
                # A big batch hints at more waiting: go round again at once.
                busy |= session.poll() >= 64
            now = time.monotonic()
            if now >= next_lost:
                next_lost = now + LOST_CHECK_INTERVAL_S
                for session in self.sessions.values():
                    session.check_lost()
            if self.metrics is not None and now >= next_metrics:
                next_metrics = now + self.config.metrics.interval_s
                self.export_metrics()
            if now >= next_watch:
                next_watch = now + self.config.watch_interval_s
                self._reap()
                if self._watched:
                    self._scan()
            if exit_when_idle and not self._watched and not self.sessions:
                return
            if not busy:
                stop.wait(self.config.poll_interval_s)

    def export_metrics(self) -> None:
        """Read every process's RED histograms and hand them to the metrics thread."""
        if self.metrics is None:
            return
        snapshot, self._final_metrics = self._final_metrics, []
        for session in self.sessions.values():
            read = session.read_metrics()
            if read is not None:
                snapshot.append(read)
        if snapshot:
            self.metrics.submit(snapshot)

    def _reap(self) -> None:
        for pid, session in list(self.sessions.items()):
            if not session.process.alive():
                log.info("pid %d exited; detaching", pid)
                self._close_session(pid)
        self._ignored = {pid for pid in self._ignored if is_alive(pid)}

    def _close_session(self, pid: int) -> None:
        session = self.sessions.pop(pid)
        try:
            session.close()
        finally:
            stats = session.stats
            if stats.final_metrics is not None:
                self._final_metrics.append(stats.final_metrics)
            totals = self.totals
            totals.events += stats.events
            totals.spans += stats.spans
            totals.lost += stats.lost
            totals.spilled += stats.spilled
            totals.drain_cpu_s += stats.drain_cpu_s
            totals.decode_cpu_s += stats.decode_cpu_s
            totals.describe_cpu_s += stats.describe_cpu_s
            totals.encode_cpu_s += stats.encode_cpu_s
            log.info(
                "pid %d: detached; %d spans from %d events, %d events lost, %d undecodable",
                pid,
                stats.spans,
                stats.events,
                stats.lost,
                stats.decode_errors,
            )
            for report, counters in stats.extensions.items():
                log.info("pid %d: %s: %s", pid, report, format_counters(counters))

    def close(self) -> None:
        """Detach everything, then send what is queued. Idempotent."""
        for pid in list(self.sessions):
            self._close_session(pid)
        if self._closed:
            return
        self._closed = True
        if self.metrics is not None:
            self.export_metrics()  # the detached processes' last counts
            self.metrics.shutdown()
            if self.totals.sessions:
                log.info("metrics: %d exports to %s, %d failed", self.metrics.exports,
                         self.metrics.exporter.what.removeprefix("metrics: "),
                         self.metrics.failed)
        self.node_maps.close()
        self.pipeline.shutdown()
        if self.totals.sessions:
            log.info("%s", self.report())

    def report(self) -> str:
        """Where every span went, and the agent's CPU per span by stage."""
        totals, stats = self.totals, self.pipeline.stats
        lost = f", {totals.lost} events lost in the kernel" if totals.lost else ""
        if totals.spilled:
            lost += f", {totals.spilled} events refused by the ring and taken by the spill ring"
        line = f"spans: {self.pipeline.summary()}{lost}"
        if totals.spans:
            per_span = {
                "drain": totals.drain_cpu_s,
                "decode": totals.decode_cpu_s,
                "describe": totals.describe_cpu_s,
                "encode": totals.encode_cpu_s,
                "assemble": stats.assemble_cpu_s,
                "send": stats.send_cpu_s,
            }
            line += "; agent CPU per span: " + ", ".join(
                f"{stage} {seconds / totals.spans * 1e6:.1f} µs"
                for stage, seconds in per_span.items()
            )
        return line
