"""One instrumented process: load its probes, read their events, export spans, detach."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import gotel
from gotel.ebpf import BpfObject, Link, RingBuffer, UnknownNameError, destroy_links, uprobe_multi
from gotel.ebpf.uprobe_multi import FdLink
from gotel.errors import GotelError
from gotel.export.otlp_encode import encode_scope
from gotel.export.pipeline import ExportPipeline, SpanChunk
from gotel.instrumentation.events import EventDecoder
from gotel.instrumentation.extension import Extension, Running
from gotel.metrics import MetricReader, ProcessMetrics
from gotel.metrics.reader import SERIES_MAP, metric_constants
from gotel.planning import ProbePlan
from gotel.target import Process
from gotel.trace import BootClock
from gotel.trace.assembly import SpanAssembler

log = logging.getLogger(__name__)

EVENTS_MAP = "events"
SPILL_MAP = "events_spill"  # where records go that the events ring refused
LOST_MAP = "events_lost"
SPILLED_MAP = "events_spilled"
# Maps with this prefix hold state that several probes share (the span of each
# goroutine, of each context): one instance per process, reused by every object.
SHARED_PREFIX = "shared_"
# Maps with this prefix hold state that crosses processes (a producer's span context for the
# consumer of its message): one instance per agent, reused by every object of every process.
NODE_PREFIX = "node_"


class NodeMaps:
    """The node_* maps of one agent: the first object that declares one creates it, every
    later object, of any process, reuses it. Owns its fds (our own dups)."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


@dataclass
class LoadedProbe:
    plan: ProbePlan
    obj: BpfObject
    links: list[Link | FdLink]
    rings: tuple[RingBuffer, ...]  # events, then the spill ring
    decoder: EventDecoder | None  # None: the object has no events ring, emits no events
    assembler: SpanAssembler
    scope: bytes  # the encoded InstrumentationScope of its spans
    metrics: MetricReader | None = None  # its RED histogram, when metrics are on
    multi: bool = False  # its programs attach as uprobe_multi links (one per program)
    lost_reported: int = 0

    def close(self) -> None:
        for ring in self.rings:
            ring.close()
        self.obj.close()  # destroys its links


@dataclass
class SessionStats:
    events: int = 0
    spans: int = 0  # spans made and handed to the export pipeline
    decode_errors: int = 0
    lost: int = 0  # events the kernel could not queue (ring buffer full)
    spilled: int = 0  # events the events ring refused and the spill ring took
    skipped: dict[str, str] = field(default_factory=dict)  # probe name -> reason
    # The RED metrics as the process was detached (None: metrics off).
    final_metrics: ProcessMetrics | None = None
    # Each extension's counters by its report name, once the process is detached.
    extensions: dict[str, dict[str, int]] = field(default_factory=dict)
    # Agent CPU seconds by stage (the draining thread's): reading the rings, decoding
    # events, describing them as spans (semantic conventions), encoding those to OTLP.
    drain_cpu_s: float = 0.0
    decode_cpu_s: float = 0.0
    describe_cpu_s: float = 0.0
    encode_cpu_s: float = 0.0


@dataclass
class PreparedObjects:
    """One binary's probes loaded into the kernel but attached to no process yet: a process
    caught at exec is handed these, so that only its uprobes remain to attach."""

    loaded: list[LoadedProbe]
    shared_maps: dict[str, int]  # name -> fd (our own dup)
    skipped: dict[str, str]  # probe name -> reason

    def close(self) -> None:
        """Release what no session took. Idempotent."""
        for lp in self.loaded:
            lp.close()
        self.loaded = []
        for fd in self.shared_maps.values():
            os.close(fd)
        self.shared_maps = {}


def prepare_objects(
    plans: Sequence[ProbePlan],
    *,
    ring_buffer_bytes: int,
    common_constants: Mapping[str, int | str],
    clock: BootClock,
    node_maps: NodeMaps,
    metric_series_limit: int = 0,
) -> PreparedObjects:
    """Open, configure and load the BPF object of every applicable plan; a probe that fails
    to load is skipped with its reason. `metric_series_limit`: the RED series each probe may
    count (0: metrics off)."""
    prepared = PreparedObjects([], {}, {})
    for plan in plans:
        if not plan.linked:
            log.debug("%s: %s", plan.probe.name, plan.skip_reason)
            continue
        if not plan.applies:
            prepared.skipped[plan.probe.name] = plan.skip_reason or "not applicable"
            continue
        try:
            prepared.loaded.append(
                _load(plan, prepared.shared_maps, ring_buffer_bytes, common_constants, clock,
                      node_maps, metric_series_limit)
            )
        except GotelError as exc:
            prepared.skipped[plan.probe.name] = str(exc)
    return prepared


def _load(
    plan: ProbePlan,
    shared_maps: dict[str, int],
    ring_buffer_bytes: int,
    common_constants: Mapping[str, int | str],
    clock: BootClock,
    node_maps: NodeMaps,
    metric_series_limit: int,
) -> LoadedProbe:
    obj = BpfObject(plan.probe.bpf_object)
    try:
        obj.set_constants(plan.constants)
        maps = obj.map_names()
        # Room for bursts between drains: a server event is ~1 KiB. An object without an
        # events ring (a router's probe only fills a shared map) emits no events.
        if EVENTS_MAP in maps:
            obj.set_max_entries(EVENTS_MAP, ring_buffer_bytes)
        metric = plan.probe.metric if metric_series_limit else None
        if metric is not None and SERIES_MAP in maps:
            obj.set_constants(metric_constants(metric))
            obj.set_max_entries(SERIES_MAP, metric_series_limit)
        else:
            metric = None
        for name, value in common_constants.items():
            try:
                obj.set_constants({name: value})
            except UnknownNameError:
                pass
        # shared_* maps: one per process; node_* maps: one per agent. The first object that
        # declares one creates it, every later one reuses it.
        reused = [(name, fds) for prefix, fds in ((SHARED_PREFIX, shared_maps),
                                                  (NODE_PREFIX, node_maps.fds))
                  for name in maps if name.startswith(prefix)]
        for name, fds in reused:
            if name in fds:
                obj.reuse_map(name, fds[name])
        multi = uprobe_multi.supported()
        for program in _programs(plan) if multi else ():
            obj.use_uprobe_multi(program)
        obj.load()
        for name, fds in reused:
            if name not in fds:
                fds[name] = os.dup(obj.map_fd(name))
        rings = tuple(obj.ring_buffer(name) for name in (EVENTS_MAP, SPILL_MAP) if name in maps)
        decoder = EventDecoder(obj.struct_layout(plan.probe.event)) if rings else None
    except BaseException:
        obj.close()
        raise
    probe = plan.probe
    assembler = SpanAssembler(probe.name, plan.describer, clock)
    scope = encode_scope(probe.scope, gotel.__version__)
    metrics = MetricReader(obj, metric, probe.scope) if metric is not None else None
    return LoadedProbe(plan, obj, [], rings, decoder, assembler, scope, metrics, multi)


def _offsets_by_program(plan: ProbePlan) -> dict[str, list[int]]:
    """Each program of a plan with the file offsets it attaches at, in order, once each."""
    found: dict[str, dict[int, None]] = {}
    for hp in plan.hooks:
        if hp.hook.entry:
            found.setdefault(hp.hook.entry, {})[hp.function.file_offset] = None
        if hp.hook.returns:
            for offset in hp.return_offsets:
                found.setdefault(hp.hook.returns, {})[offset] = None
    return {program: list(offsets) for program, offsets in found.items() if offsets}


def _programs(plan: ProbePlan) -> list[str]:
    return list(_offsets_by_program(plan))


class Session:
    """Owns every BPF object, link and ring buffer for one target process."""

    def __init__(
        self,
        process: Process,
        plans: list[ProbePlan],
        pipeline: ExportPipeline,
        clock: BootClock,
        *,
        resource: bytes,
        pid_filter: int | None = None,
        common_constants: Mapping[str, int | str] | None = None,
        ring_buffer_bytes: int = 8 << 20,
        extensions: Sequence[Extension] = (),
        resource_attributes: Mapping[str, object] | None = None,
        metric_series_limit: int = 0,
        node_maps: NodeMaps | None = None,
        prepared: PreparedObjects | None = None,
        on_probes_attached: Callable[[], None] | None = None,
    ) -> None:
        """`metric_series_limit`: the RED series each probe may count (0: metrics off).
        `prepared`: objects loaded ahead for this binary (with the same settings)."""
        self.metric_series_limit = metric_series_limit
        self.resource_attributes = dict(resource_attributes or {})
        self.started_ns = time.time_ns()  # cumulative metrics count from here
        # Without an agent's: this session's own, closed with it.
        self._own_node_maps = node_maps is None
        self.node_maps = NodeMaps() if node_maps is None else node_maps
        self._prepared = prepared
        self._on_probes_attached = on_probes_attached
        self.ring_buffer_bytes = ring_buffer_bytes
        self.process = process
        # Knobs every object may declare (the sampler); set where declared.
        self.common_constants = dict(common_constants or {})
        self.shared_maps: dict[str, int] = {}  # name -> fd (our own dup)
        self.extensions = list(extensions)
        self.running: dict[str, tuple[Extension, Running]] = {}  # name -> started extension
        self.plans = plans
        self.pipeline = pipeline
        self.resource = resource  # the encoded Resource of this process's spans
        self.clock = clock
        self.pid_filter = process.pid if pid_filter is None else pid_filter
        self.loaded: list[LoadedProbe] = []
        self.stats = SessionStats()

    # -- attach -----------------------------------------------------------------
    def attach(self, *, extensions_later: bool = False) -> None:
        """Load (unless prepared) and attach every applicable probe; a probe that fails is
        skipped, not fatal. Then start the extensions, unless `extensions_later`: the caller
        then calls start_extensions() (from another thread, if it likes)."""
        prepared = self._prepared or prepare_objects(
            self.plans,
            ring_buffer_bytes=self.ring_buffer_bytes,
            common_constants=self.common_constants,
            clock=self.clock,
            node_maps=self.node_maps,
            metric_series_limit=self.metric_series_limit,
        )
        self._prepared = None
        self.shared_maps = prepared.shared_maps
        self.stats.skipped.update(prepared.skipped)
        for lp in prepared.loaded:
            try:
                # All-or-nothing per probe: a half-attached probe would emit nonsense.
                self._hook(lp)
            except GotelError as exc:
                lp.close()  # destroys the links made so far
                self.stats.skipped[lp.plan.probe.name] = str(exc)
                continue
            self.loaded.append(lp)
        prepared.loaded = []
        if self.loaded and self._on_probes_attached is not None:
            self._on_probes_attached()
        if not extensions_later:
            self.start_extensions()

    def start_extensions(self) -> None:
        """Start the process extensions (once probes are attached), then say what runs."""
        if self.loaded:
            for ext in self.extensions:
                try:
                    running = ext.start(self.process.pid, self.shared_maps)
                except (GotelError, OSError) as exc:
                    gone = not self.process.alive()  # a short-lived program: nothing to say
                    log.log(logging.DEBUG if gone else logging.WARNING, "pid %d: %s off: %s",
                            self.process.pid, ext.name, exc)
                    continue
                if running is not None:
                    self.running[ext.name] = (ext, running)
        self._report_attach()

    def _hook(self, lp: LoadedProbe) -> None:
        if lp.multi:
            binary, pid = self.process.binary, self.pid_filter
            for program, offsets in _offsets_by_program(lp.plan).items():
                lp.links.append(lp.obj.attach_uprobe_multi(program, binary, offsets, pid))
            return
        for hp in lp.plan.hooks:
            if hp.hook.entry:
                lp.links.append(self._uprobe(lp.obj, hp.hook.entry, hp.function.file_offset))
            if hp.hook.returns:
                for offset in hp.return_offsets:
                    lp.links.append(self._uprobe(lp.obj, hp.hook.returns, offset))

    def _uprobe(self, obj: BpfObject, program: str, offset: int) -> Link:
        return obj.attach_uprobe(program, self.process.binary, offset, self.pid_filter)

    def _report_attach(self) -> None:
        total = sum(1 for plan in self.plans if plan.linked)
        uprobes = sum(lp.plan.uprobe_count for lp in self.loaded)
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
        if self.stats.skipped:
            msg += "; skipped: %s"
            args.append("; ".join(f"{k} ({v})" for k, v in self.stats.skipped.items()))
        log.info(msg, *args)

    @property
    def attached(self) -> bool:
        return bool(self.loaded)

    # -- read ---------------------------------------------------------------------------
    def poll(self) -> int:
        """Drain every ring buffer and queue the spans for export; returns the events read."""
        read = 0
        for lp in self.loaded:
            for ring in lp.rings:
                read += self._read(lp, ring)
        return read

    def _read(self, lp: LoadedProbe, ring: RingBuffer) -> int:
        stats = self.stats
        decoder = lp.decoder
        assert decoder is not None  # it has rings
        t0 = time.thread_time()
        block, count = ring.drain_block(decoder.size)
        odd = [] if count else ring.drain(limit=1)  # busy, discarded or odd-sized
        t1 = time.thread_time()
        stats.drain_cpu_s += t1 - t0
        if not count and not odd:
            return 0
        try:
            events = decoder.decode_block(block, count) if count else []
            events += [decoder.decode(raw) for raw in odd]
        except GotelError as exc:
            stats.decode_errors += count + len(odd)
            log.warning("%s: undecodable events dropped: %s", lp.plan.probe.name, exc)
            return count + len(odd)
        t2 = time.thread_time()
        described = lp.assembler.describe(events)
        t3 = time.thread_time()
        spans = lp.assembler.encode(described)
        t4 = time.thread_time()
        stats.decode_cpu_s += t2 - t1
        stats.describe_cpu_s += t3 - t2
        stats.encode_cpu_s += t4 - t3
        stats.events += len(events)
        if spans:
            stats.spans += len(spans)
            self.pipeline.add(SpanChunk(self.resource, lp.scope, spans))
        return len(events)

    def check_lost(self) -> int:
        """Events the kernel could not queue since the last check; reported, never silent."""
        new = 0
        for lp in self.loaded:
            if not lp.rings:
                continue  # it emits no events
            lost = lp.obj.percpu_sum(LOST_MAP)
            if lost > lp.lost_reported:
                delta = lost - lp.lost_reported
                lp.lost_reported = lost
                new += delta
                log.warning(
                    "pid %d: %s lost %d events (ring buffer full; %d in total)",
                    self.process.pid,
                    lp.plan.probe.name,
                    delta,
                    lost,
                )
        self.stats.lost += new
        self.stats.spilled = sum(
            lp.obj.percpu_sum(SPILLED_MAP)
            for lp in self.loaded
            if SPILLED_MAP in lp.obj.map_names()
        )
        return new

    # -- metrics ------------------------------------------------------------------------
    def read_metrics(self) -> ProcessMetrics | None:
        """Every probe's RED histograms as of now (cumulative since attach); None: metrics off."""
        readers = [lp.metrics for lp in self.loaded if lp.metrics is not None]
        if not readers:
            return None
        metrics = []
        for reader in readers:
            try:
                metrics.append(reader.read())
            except GotelError as exc:
                log.warning("pid %d: %s: %s", self.process.pid, reader.metric.name, exc)
        return ProcessMetrics(self.resource_attributes, self.started_ns, time.time_ns(), metrics)

    # -- detach -------------------------------------------------------------------
    def close(self, *, pace: Callable[[], object] | None = None) -> None:
        """Read what is left, then remove every probe. Idempotent.

        Without `pace` the uprobes are removed all at once; with it, one at a time, calling
        pace() before each: the kernel serialises uprobe removal and creation (one RCU grace
        period per removal), so a caller that attaches elsewhere meanwhile can go first."""
        if self.loaded:
            try:
                # Detach first, so that draining ends: then read every event still queued.
                links = [link for lp in self.loaded for link in lp.links]
                if pace is None:
                    destroy_links(links)
                else:
                    for link in links:
                        pace()
                        link.destroy()
                while self.poll():
                    pass
                # Nothing counts any more: the last read is the final one.
                self.stats.final_metrics = self.read_metrics()
                self.check_lost()
                self.stats.decode_errors += sum(
                    lp.assembler.undecodable + lp.assembler.invalid for lp in self.loaded
                )
            finally:
                for ext, running in self.running.values():
                    self.stats.extensions[ext.report] = running.counters()
                    running.close()
                self.running = {}
                for lp in self.loaded:
                    lp.close()
                self.loaded = []
                for fd in self.shared_maps.values():
                    os.close(fd)
                self.shared_maps = {}
                if self._own_node_maps:
                    self.node_maps.close()
