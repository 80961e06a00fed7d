"""Runs the sessions of every target process: attach, drain on a timer, watch, detach."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gotel.config import Config
from gotel.errors import GotelError, MissingPrivilegeError, TargetError
from gotel.export import ExportPipeline, create_exporter
from gotel.export.metrics_export import MetricsPusher, create_metric_exporter
from gotel.export.otlp_encode import encode_resource
from gotel.goelf import open_binary
from gotel.instrumentation.extension import Extension, format_counters
from gotel.instrumentation.probe import Probe
from gotel.instrumentation.registry import all_extensions
from gotel.metrics import HistogramMetric, ProcessMetrics
from gotel.planning import ProbePlan, plan_probes
from gotel.session import Session, SessionStats
from gotel.shared_objects import ObjectPool, ProbeObject
from gotel.target import (
    ExecEvents,
    ExecutableSelector,
    PortSelector,
    Process,
    Selector,
    binary_identity,
    is_alive,
    process_from_pid,
)
from gotel.trace import BootClock, build_resource

log = logging.getLogger(__name__)

LOST_CHECK_INTERVAL_S = 2.0
# With exec events, a full /proc scan only catches what they cannot see (a process that
# was already running, a listener opened long after exec, an event the ring dropped).
FULL_SCAN_INTERVAL_S = 2.0
# A port is often opened a little after exec: look again this often for so long after one.
PORT_RECHECK_S, PORT_RECHECK_FOR_S = 0.05, 2.0
# Binaries whose analysis (probes, offsets) is kept.
ANALYSES_KEPT = 256
# The longest a detaching session waits for an attach before removing its next uprobe.
ATTACH_PRIORITY_S = 5.0
BinaryIdentity = tuple[int, int, int, int]


@dataclass(frozen=True)
class Analysis:
    plans: list[ProbePlan]
    go_version: str


@dataclass
class Totals:
    """Over every session this supervisor ran, closed ones included."""

    events: int = 0
    spans: int = 0
    lost: int = 0  # told to one process (a shared ring's losses are the pool's)
    sessions: int = 0
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
        self.totals = Totals()
        # One pipeline for every process: one connection to the collector, requests that
        # carry the spans of several processes, one bound on the memory they take.
        self.pipeline = ExportPipeline(
            create_exporter(config.exporter, output=config.output), config.export_limits
        )
        metrics = config.metrics
        exporter = create_metric_exporter(metrics.exporter, output=metrics.output)
        self.metrics = MetricsPusher(exporter) if exporter is not None else None
        # Every BPF object, shared by the processes whose binaries give it the same constants.
        self.pool = ObjectPool(
            ring_buffer_bytes=config.ring_buffer_bytes,
            common_constants=config.sampler.constants(),
            metric_series_limit=metrics.series_limit if self.metrics else 0,
        )
        # The last read of each process detached since the previous export.
        self._final_metrics: list[ProcessMetrics] = []
        self._selectors: list[Selector] = []
        self._exec_events: ExecEvents | None = None
        self._ignored: set[int] = set()
        self._closed = False
        # Per binary file: its analysis (or why it cannot be instrumented), and whether its
        # objects were loaded ahead, so that the next process of it attaches in ms.
        self._analyses: dict[BinaryIdentity, Analysis | GotelError] = {}
        self._prepared: set[BinaryIdentity] = set()
        self._preparing: dict[BinaryIdentity, Future[dict[str, str]]] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._port_recheck_until = 0.0
        self._attached_at: dict[int, int] = {}  # pid -> CLOCK_BOOTTIME its attach began
        self._starter: ThreadPoolExecutor | None = None
        self._starting: dict[int, Future[None]] = {}  # pid -> its extensions starting
        self._detacher: ThreadPoolExecutor | None = None
        self._detaching: list[Future[None]] = []
        self._totals_lock = threading.Lock()
        self._attach_idle = threading.Event()
        self._attach_idle.set()
        self._final = False  # closing everything: no attach to give way to

    # -- targets ----------------------------------------------------------------
    def attach(
        self, process: Process, *, pid_filter: int | None = None, exec_ns: int | None = None
    ) -> Session:
        """Instrument one process. Raises GotelError when no probe could attach.
        `exec_ns` (CLOCK_BOOTTIME of its exec) makes the log say how long after exec."""
        self._attach_idle.clear()  # detaching sessions hold off their uprobe removals
        try:
            return self._attach(process, pid_filter, exec_ns)
        finally:
            self._attach_idle.set()

    def _attach(self, process: Process, pid_filter: int | None, exec_ns: int | None) -> Session:
        attach_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        identity = binary_identity(process.binary)
        analysis = self._analyse(identity, process.binary, f"pid {process.pid}")
        resource = build_resource(
            executable=process.executable_path,
            pid=process.pid,
            go_version=analysis.go_version,
            service_name=self.config.service_name,
            extra={},
        )
        session = Session(
            process,
            analysis.plans,
            self.pipeline,
            self.clock,
            resource=encode_resource(resource),
            pid_filter=pid_filter,
            pool=self.pool,
            extensions=self.extensions,
            resource_attributes=resource,
            on_probes_attached=None if exec_ns is None else _log_since_exec(process.pid, exec_ns),
        )
        later = exec_ns is not None  # caught at exec: catching the next one matters more
        try:
            session.attach(extensions_later=later)
        except BaseException:
            session.close()
            raise
        if not session.attached:
            reasons = "; ".join(f"{k}: {v}" for k, v in session.stats.skipped.items())
            session.close()
            raise TargetError(f"pid {process.pid}: no probe could attach ({reasons})")
        self.sessions[process.pid] = session
        self._attached_at[process.pid] = attach_ns
        self.totals.sessions += 1
        if later:
            # Extensions can take a while to load (the socket injector ~1 s): the loop
            # goes on draining and catching processes meanwhile.
            if self._starter is None:
                self._starter = ThreadPoolExecutor(1, thread_name_prefix="gotel-extensions")
            self._starting[process.pid] = self._starter.submit(session.start_extensions)
        if self._selectors:  # more processes of this binary may come: be ready for them
            self._load_ahead(identity, analysis)
        return session

    def _analyse(self, identity: BinaryIdentity, binary: Path, who: str) -> Analysis:
        """The binary's probe plans, worked out once per file. Raises TargetError the first
        time a file cannot be instrumented, _Reported (already said) after that."""
        known = self._analyses.get(identity)
        if isinstance(known, GotelError):
            raise _Reported(str(known)) from known
        if known is not None:
            return known
        try:
            with open_binary(binary) as opened:
                known = Analysis(plan_probes(opened, self.probes), opened.go_version)
        except GotelError as exc:
            kind = MissingPrivilegeError if isinstance(exc, MissingPrivilegeError) else TargetError
            known = kind(f"{who}: {exc}")
        if len(self._analyses) >= ANALYSES_KEPT:
            del self._analyses[next(iter(self._analyses))]
        self._analyses[identity] = known
        if isinstance(known, GotelError):
            raise known
        return known

    def watch(self, selector: Selector) -> None:
        """Instrument every process `selector` picks, now and whenever one starts (caught at
        its exec when the kernel allows, else by polling /proc)."""
        first = not self._selectors
        if first:
            self._start_exec_events()
        self._selectors.append(selector)
        if isinstance(selector, ExecutableSelector) and selector.local_file is not None:
            path = selector.local_file
            identity = binary_identity(path)
            try:
                self._load_ahead(identity, self._analyse(identity, path, str(path)))
            except GotelError as exc:
                log.warning("%s", exc)  # its processes will be refused (and not told again)
        self._scan()
        if first and self._exec_events is not None:  # said once the running ones are found
            log.info("catching processes at exec (tracepoint sched_process_exec)")

    def _start_exec_events(self) -> None:
        try:
            self._exec_events = ExecEvents()
        except GotelError as exc:
            log.warning(
                "exec events unavailable (%s); looking for processes every %.0f ms instead",
                exc,
                self.config.watch_interval_s * 1000,
            )

    def _scan(self, selectors: list[Selector] | None = None) -> None:
        for selector in self._selectors if selectors is None else selectors:
            try:
                pids = selector.scan()
            except OSError as exc:
                log.warning("cannot watch %s: %s", selector, exc)
                continue
            for pid in pids:
                self._attach_selected(pid)

    def _attach_selected(self, pid: int, exec_ns: int | None = None) -> None:
        if pid in self.sessions or pid in self._ignored:
            return
        try:
            self.attach(process_from_pid(pid), exec_ns=exec_ns)
        except GotelError as exc:
            self._ignored.add(pid)
            if not isinstance(exc, _Reported):
                log.warning("%s", exc)
        except OSError as exc:  # it exited while being looked at
            log.debug("pid %d: %s", pid, exc)

    def _on_execs(self, events: ExecEvents) -> None:
        for ev in events.drain():
            pid = ev.pid
            if pid in self.sessions and ev.boot_ns < self._attached_at.get(pid, 0):
                continue  # the exec of the image attached to (found by a scan meanwhile)
            if pid in self.sessions:  # a new image: the old one's probes went with it
                log.info("pid %d: executed %s; detaching from its previous program", pid,
                         ev.filename)
                self._detach(pid)
            self._ignored.discard(pid)
            for selector in self._selectors:
                if isinstance(selector, PortSelector):
                    self._port_recheck_until = time.monotonic() + PORT_RECHECK_FOR_S
                elif selector.matches(pid):
                    self._attach_selected(pid, exec_ns=ev.boot_ns)
                    break
        if events.lost_since_last_call():
            log.warning("exec events were lost (ring full); scanning /proc")
            self._scan()

    # -- loading ahead -----------------------------------------------------------------
    def _load_ahead(self, identity: BinaryIdentity, analysis: Analysis) -> None:
        """Load the binary's objects on the worker thread, once, before a process needs them."""
        if identity in self._prepared or identity in self._preparing:
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="gotel-prepare")
        self._preparing[identity] = self._worker.submit(self.pool.prepare, analysis.plans)

    def _collect_loaded_ahead(self) -> None:
        for identity, future in list(self._preparing.items()):
            if not future.done():
                continue
            del self._preparing[identity]
            self._prepared.add(identity)
            try:
                failed = future.result()
            except Exception as exc:  # loading ahead only saves time: attach loads its own
                log.debug("loading objects ahead failed: %s", exc)
                continue
            for probe, reason in failed.items():
                log.debug("loading %s ahead failed: %s", probe, reason)

    # -- loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event, *, exit_when_idle: bool = True) -> None:
        """Drain until `stop` is set, or (exit_when_idle) until no target is left."""
        next_lost = next_watch = next_port = time.monotonic()
        next_metrics = next_lost + self.config.metrics.interval_s
        next_full_scan = next_watch + FULL_SCAN_INTERVAL_S  # watch() has just scanned
        while not stop.is_set():
            if self._exec_events is not None:
                self._on_execs(self._exec_events)
            # A big batch hints at more waiting: go round again at once.
            busy = self.pool.poll() >= 64
            now = time.monotonic()
            if now >= next_lost:
                next_lost = now + LOST_CHECK_INTERVAL_S
                self.pool.check_lost()
            if self.metrics is not None and now >= next_metrics:
                next_metrics = now + self.config.metrics.interval_s
                self.export_metrics()
            if self._preparing:
                self._collect_loaded_ahead()
            ports: list[Selector] = [s for s in self._selectors if isinstance(s, PortSelector)]
            if ports and now < self._port_recheck_until and now >= next_port:
                next_port = now + PORT_RECHECK_S
                self._scan(ports)
            if now >= next_watch:
                next_watch = now + self.config.watch_interval_s
                self._reap()
                if self._exec_events is None:
                    self._scan()
                elif now >= next_full_scan:
                    next_full_scan = now + FULL_SCAN_INTERVAL_S
                    # Execs first: a process the scan would find is then known by its exec.
                    self._on_execs(self._exec_events)
                    self._scan()
                elif ports:
                    self._scan(ports)
            if exit_when_idle and not self._selectors and not self.sessions:
                return
            if not busy:
                stop.wait(self.config.poll_interval_s)

    def export_metrics(self) -> None:
        """Read every process's RED histograms and hand them to the metrics thread."""
        if self.metrics is None:
            return
        with self._totals_lock:  # detaching threads add their processes' last reads
            snapshot, self._final_metrics = self._final_metrics, []
        # Each shared object's series once, for all of its processes.
        reads: dict[ProbeObject, dict[int, HistogramMetric]] = {}
        for shared in list(self.pool.objects.values()):
            if shared.metrics is not None and shared.users:
                try:
                    reads[shared] = shared.read_metrics(list(shared.users))
                except GotelError as exc:
                    log.warning("%s: %s", shared.metrics.metric.name, exc)
        for session in list(self.sessions.values()):
            read = session.read_metrics(reads)
            if read is not None:
                snapshot.append(read)
        if snapshot:
            self.metrics.submit(snapshot)

    def _reap(self) -> None:
        for pid, session in list(self.sessions.items()):
            if not session.process.alive():
                log.info("pid %d exited; detaching", pid)
                self._detach(pid)
        self._ignored = {pid for pid in self._ignored if is_alive(pid)}

    def _detach(self, pid: int) -> None:
        """Close a session on the detaching thread: removing uprobes waits for RCU grace
        periods (hundreds of ms, seconds under load), which must not hold up the loop
        that drains the others and catches new processes."""
        session = self.sessions.pop(pid)
        self._attached_at.pop(pid, None)
        if self._detacher is None:
            self._detacher = ThreadPoolExecutor(4, thread_name_prefix="gotel-detach")
        self._detaching = [f for f in self._detaching if not f.done()]
        starting = self._starting.pop(pid, None)
        self._detaching.append(self._detacher.submit(self._close_session, pid, session, starting))

    def _close_session(self, pid: int, session: Session, starting: Future[None] | None) -> None:
        started = time.monotonic()
        try:
            if starting is not None and starting.exception() is not None:
                # Waited for: what started is closed with the rest.
                log.warning("pid %d: extensions failed: %s", pid, starting.exception())
            session.close(pace=None if self._final else self._give_way_to_attach)
        except Exception as exc:  # on the detaching thread: said here, or never
            log.warning("pid %d: detach failed: %s", pid, exc)
        finally:
            stats = session.stats
            with self._totals_lock:
                self._add_to_totals(stats)
                if stats.final_metrics is not None:
                    self._final_metrics.append(stats.final_metrics)
            log.info(
                "pid %d: detached in %.0f ms; %d spans from %d events, %d events lost, "
                "%d undecodable",
                pid,
                (time.monotonic() - started) * 1000,
                stats.spans,
                stats.events,
                stats.lost,
                stats.decode_errors,
            )
            for report, counters in stats.extensions.items():
                log.info("pid %d: %s: %s", pid, report, format_counters(counters))

    def _give_way_to_attach(self) -> None:
        self._attach_idle.wait(ATTACH_PRIORITY_S)

    def _add_to_totals(self, stats: SessionStats) -> None:
        totals = self.totals
        totals.events += stats.events
        totals.spans += stats.spans
        totals.lost += stats.lost
        totals.describe_cpu_s += stats.describe_cpu_s
        totals.encode_cpu_s += stats.encode_cpu_s

    def close_sessions(self) -> None:
        """Detach from every process now (and wait until done); watching goes on."""
        final, self._final = self._final, True  # nothing attaches meanwhile: all at once
        try:
            for pid in list(self.sessions):
                self._detach(pid)
            for future in self._detaching:
                future.result()
            self._detaching = []
        finally:
            self._final = final

    def close(self) -> None:
        """Detach everything, then send what is queued. Idempotent."""
        if self._exec_events is not None:
            self._exec_events.close()
            self._exec_events = None
        self._final = True
        for pid in list(self.sessions):
            self._detach(pid)
        if self._detacher is not None:
            self._detacher.shutdown(wait=True)  # every session detached, its spans queued
            self._detacher = None
        if self._starter is not None:
            self._starter.shutdown(wait=True)
            self._starter = None
        for ext in self.extensions:
            try:
                ext.close()
            except Exception as exc:  # closing the others matters more
                log.warning("%s: close failed: %s", ext.name, exc)
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
            self._collect_loaded_ahead()
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
        self.pool.close()
        self.pipeline.shutdown()
        if self.totals.sessions:
            log.info("%s", self.report())

    def report(self) -> str:
        """Where every span went, and the agent's CPU per span by stage."""
        totals, stats, drained = self.totals, self.pipeline.stats, self.pool.totals()
        lost_total = totals.lost + drained.lost
        lost = f", {lost_total} events lost in the kernel" if lost_total else ""
        if drained.spilled:
            lost += f", {drained.spilled} events refused by the ring and taken by the spill ring"
        if drained.unrouted:
            lost += f", {drained.unrouted} events of processes already detached dropped"
        if drained.decode_errors:
            lost += f", {drained.decode_errors} undecodable events dropped"
        line = f"spans: {self.pipeline.summary()}{lost}"
        if totals.spans:
            per_span = {
                "drain": drained.drain_cpu_s,
                "decode": drained.decode_cpu_s,
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


class _Reported(TargetError):
    """Refused for a reason already logged once for its binary."""


def _log_since_exec(pid: int, exec_ns: int) -> Callable[[], None]:
    def report() -> None:
        ms = (time.clock_gettime_ns(time.CLOCK_BOOTTIME) - exec_ns) / 1e6
        log.info("pid %d: probes attached %.1f ms after its exec", pid, ms)

    return report
