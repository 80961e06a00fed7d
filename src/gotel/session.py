"""One instrumented process: attach its probes to the agent's shared objects, turn its
events into spans, detach."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import gotel
from gotel.ebpf import Link, destroy_links
from gotel.errors import GotelError
from gotel.export.otlp_encode import encode_scope
from gotel.export.pipeline import ExportPipeline, SpanChunk
from gotel.instrumentation.events import Event
from gotel.instrumentation.extension import Extension, Running
from gotel.metrics import HistogramMetric, ProcessMetrics
from gotel.planning import ProbePlan
from gotel.shared_objects import ObjectPool, ProbeObject, ProbeUse, offsets_by_program
from gotel.target import Process
from gotel.trace import BootClock
from gotel.trace.assembly import SpanAssembler

log = logging.getLogger(__name__)


@dataclass
class SessionStats:
    events: int = 0
    spans: int = 0  # spans made and handed to the export pipeline
    decode_errors: int = 0
    lost: int = 0  # events the kernel could not queue (ring buffer full)
    skipped: dict[str, str] = field(default_factory=dict)  # probe name -> reason
    # The RED metrics as the process was detached (None: metrics off).
    final_metrics: ProcessMetrics | None = None
    # Each extension's counters by its report name, once the process is detached.
    extensions: dict[str, dict[str, int]] = field(default_factory=dict)
    # Agent CPU seconds by stage of this process's events: describing them as spans
    # (semantic conventions), encoding those to OTLP (reading and decoding rings is the
    # shared objects', ObjectPool.totals()).
    describe_cpu_s: float = 0.0
    encode_cpu_s: float = 0.0


class _ProbeSpans:
    """Where one probe's events of this process go: its own assembler (the binary's
    describer) and scope, then the session's pipeline."""

    def __init__(self, session: Session, plan: ProbePlan) -> None:
        self.session = session
        self.assembler = SpanAssembler(plan.probe.name, plan.describer, session.clock)
        self.scope = encode_scope(plan.probe.scope, gotel.__version__)

    def take(self, use: ProbeUse, events: list[Event]) -> None:
        self.session.take(self, events)

    def lost(self, count: int) -> None:
        self.session.lost(count)


class Session:
    """One target process's links on the agent's shared objects, and its spans."""

    def __init__(
        self,
        process: Process,
        plans: list[ProbePlan],
        pipeline: ExportPipeline,
        clock: BootClock,
        *,
        resource: bytes,
        pid_filter: int | None = None,
        pool: ObjectPool | None = None,
        extensions: Sequence[Extension] = (),
        resource_attributes: Mapping[str, object] | None = None,
        on_probes_attached: Callable[[], None] | None = None,
    ) -> None:
        """`pool`: the agent's objects (without one, the session loads its own and closes
        them with itself)."""
        self.resource_attributes = dict(resource_attributes or {})
        self.started_ns = time.time_ns()  # cumulative metrics count from here
        self._own_pool = pool is None
        self.pool = ObjectPool() if pool is None else pool
        self._on_probes_attached = on_probes_attached
        self.process = process
        self.extensions = list(extensions)
        self.running: dict[str, tuple[Extension, Running]] = {}  # name -> started extension
        self.plans = plans
        self.pipeline = pipeline
        self.resource = resource  # the encoded Resource of this process's spans
        self.clock = clock
        self.pid_filter = process.pid if pid_filter is None else pid_filter
        self.loaded: list[ProbeUse] = []
        self._spans: list[_ProbeSpans] = []  # one per probe attached
        self.stats = SessionStats()
        # Two threads may hand this process events at once (the agent's loop and a detaching
        # thread draining an object it shares with it).
        self._stats_lock = threading.Lock()

    # -- attach -----------------------------------------------------------------
    def attach(self, *, extensions_later: bool = False) -> None:
        """Attach every applicable probe (loading its object unless the pool has it); a
        probe that fails is skipped, not fatal. Then start the extensions, unless
        `extensions_later`: the caller then calls start_extensions() (from another thread,
        if it likes)."""
        pid = self.process.pid
        for plan in self.plans:
            name = plan.probe.name
            if not plan.linked:
                log.debug("%s: %s", name, plan.skip_reason)
                continue
            if not plan.applies:
                self.stats.skipped[name] = plan.skip_reason or "not applicable"
                continue
            try:
                # Registered before its first event can come.
                spans = _ProbeSpans(self, plan)
                use = self.pool.add_use(plan, pid, spans)
            except GotelError as exc:
                self.stats.skipped[name] = str(exc)
                continue
            shared = use.shared
            try:
                # All-or-nothing per probe: a half-attached probe would emit nonsense.
                self._hook(use)
            except GotelError as exc:
                destroy_links(use.links)
                self.pool.remove_user(shared, pid)
                self.stats.skipped[name] = str(exc)
                continue
            self.loaded.append(use)
            self._spans.append(spans)
        if self.loaded and self._on_probes_attached is not None:
            self._on_probes_attached()
        if not extensions_later:
            self.start_extensions()

    def agent_maps(self) -> dict[str, int]:
        """The agent-wide maps this process's objects use, by name (fds stay the pool's)."""
        names = {name for use in self.loaded for name in use.shared.obj.map_names()}
        return {name: m.fd for name, m in self.pool.maps.items() if name in names}

    def start_extensions(self) -> None:
        """Start the process extensions (once probes are attached), then say what runs."""
        if self.loaded:
            maps = self.agent_maps()
            for ext in self.extensions:
                try:
                    running = ext.start(self.process.pid, maps)
                except (GotelError, OSError) as exc:
                    gone = not self.process.alive()  # a short-lived program: nothing to say
                    log.log(logging.DEBUG if gone else logging.WARNING, "pid %d: %s off: %s",
                            self.process.pid, ext.name, exc)
                    continue
                if running is not None:
                    self.running[ext.name] = (ext, running)
        self._report_attach()

    def _hook(self, use: ProbeUse) -> None:
        obj, binary, pid = use.shared.obj, self.process.binary, self.pid_filter
        if use.shared.multi:
            for program, offsets in offsets_by_program(use.plan).items():
                use.links.append(obj.attach_uprobe_multi(program, binary, offsets, pid))
            return
        for hp in use.plan.hooks:
            if hp.hook.entry:
                use.links.append(self._uprobe(use, hp.hook.entry, hp.function.file_offset))
            if hp.hook.returns:
                for offset in hp.return_offsets:
                    use.links.append(self._uprobe(use, hp.hook.returns, offset))

    def _uprobe(self, use: ProbeUse, program: str, offset: int) -> Link:
        return use.shared.obj.attach_uprobe(program, self.process.binary, offset,
                                            self.pid_filter)

    def _report_attach(self) -> None:
        total = sum(1 for plan in self.plans if plan.linked)
        uprobes = sum(use.plan.uprobe_count for use in self.loaded)
        shared = sum(1 for use in self.loaded if len(use.shared.users) > 1)
        msg = "pid %d (%s): attached %d/%d probes (%d uprobes)"
        args: list[object] = [
            self.process.pid,
            self.process.executable_name,
            len(self.loaded),
            total,
            uprobes,
        ]
        for ext in self.extensions:
            msg += f", {ext.name}: %s"
            args.append("on" if ext.name in self.running else "off")
        if shared:
            msg += ", %d of its probe objects shared with other processes"
            args.append(shared)
        if self.stats.skipped:
            msg += "; skipped: %s"
            args.append("; ".join(f"{k} ({v})" for k, v in self.stats.skipped.items()))
        log.info(msg, *args)

    @property
    def attached(self) -> bool:
        return bool(self.loaded)

    # -- read ---------------------------------------------------------------------------
    def poll(self) -> int:
        """Drain this process's objects (their events go to every process they serve);
        returns the events read. The agent drains its whole pool instead."""
        return sum(use.shared.drain() for use in self.loaded)

    def take(self, probe: _ProbeSpans, events: list[Event]) -> None:
        """This process's events of one probe: spans, queued for export."""
        stats = self.stats
        t0 = time.thread_time()
        described = probe.assembler.describe(events)
        t1 = time.thread_time()
        spans = probe.assembler.encode(described)
        t2 = time.thread_time()
        with self._stats_lock:
            stats.describe_cpu_s += t1 - t0
            stats.encode_cpu_s += t2 - t1
            stats.events += len(events)
            stats.spans += len(spans)
        if spans:
            self.pipeline.add(SpanChunk(self.resource, probe.scope, spans))

    def lost(self, count: int) -> None:
        with self._stats_lock:
            self.stats.lost += count

    def check_lost(self) -> None:
        """Count what the kernel could not queue of this process's objects' events."""
        self.pool.check_lost([use.shared for use in self.loaded])

    # -- metrics ------------------------------------------------------------------------
    def read_metrics(
        self, reads: Mapping[ProbeObject, Mapping[int, HistogramMetric]] | None = None
    ) -> ProcessMetrics | None:
        """Every probe's RED histograms as of now (cumulative since attach); None: metrics
        off. `reads`: objects' series already read, by object, then pid (else read now)."""
        pid = self.process.pid
        metrics = []
        on = False
        for use in self.loaded:
            reader = use.shared.metrics
            if reader is None:
                continue
            on = True
            try:
                if reads is not None and use.shared in reads:
                    mine = reads[use.shared].get(pid)
                else:
                    mine = use.shared.read_metrics([pid]).get(pid)
            except GotelError as exc:
                log.warning("pid %d: %s: %s", pid, reader.metric.name, exc)
                continue
            if mine is not None:
                metrics.append(mine)
        if not on:
            return None
        return ProcessMetrics(self.resource_attributes, self.started_ns, time.time_ns(), metrics)

    # -- detach -------------------------------------------------------------------
    def close(self, *, pace: Callable[[], object] | None = None) -> None:
        """Read what is left, then remove every probe. Idempotent.

        Without `pace` the uprobes are removed all at once; with it, one at a time, calling
        pace() before each: the kernel serialises uprobe removal and creation (one RCU grace
        period per removal), so a caller that attaches elsewhere meanwhile can go first."""
        pid = self.process.pid
        try:
            if self.loaded:
                # Detach first, so that draining ends: then read every event still queued.
                links = [link for use in self.loaded for link in use.links]
                if pace is None:
                    destroy_links(links)
                else:
                    for link in links:
                        pace()
                        link.destroy()
                # One pass reads all that is queued; more passes only find events of other
                # processes sharing the objects (bounded: they may never stop coming).
                for _ in range(8):
                    if not self.poll():
                        break
                # Nothing counts any more: the last read is the final one.
                self.stats.final_metrics = self.read_metrics()
                self.check_lost()
                self.stats.decode_errors += sum(
                    probe.assembler.undecodable + probe.assembler.invalid
                    for probe in self._spans
                )
        finally:
            for ext, running in self.running.values():
                self.stats.extensions[ext.report] = running.counters()
                running.close()
            self.running = {}
            for use in self.loaded:
                self.pool.remove_user(use.shared, pid)
            if self.loaded:
                self.pool.forget_process(pid)
            self.loaded = []
            if self._own_pool:
                self.pool.close()
