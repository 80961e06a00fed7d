"""One instrumented process: load its probes, read their events, export spans, detach."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gotel.ebpf import BpfObject, Link, RingBuffer, UnknownNameError
from gotel.errors import GotelError
from gotel.export import SpanExporter
from gotel.instrumentation.sockinject.injector import SocketInjector
from gotel.planning import ProbePlan
from gotel.propagation import start_injector
from gotel.target import Process
from gotel.trace import BootClock, Span

log = logging.getLogger(__name__)

EVENTS_MAP = "events"
LOST_MAP = "events_lost"
# Maps with this prefix hold state that several probes share (the span of each
# goroutine, of each context): one instance per process, reused by every object.
SHARED_PREFIX = "shared_"


@dataclass
class LoadedProbe:
    plan: ProbePlan
    obj: BpfObject
    links: list[Link]
    ring: RingBuffer
    decode: Callable[[bytes], dict]
    lost_reported: int = 0


@dataclass
class SessionStats:
    events: int = 0
    spans: int = 0
    decode_errors: int = 0
    lost: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # probe name -> reason
    injection: dict[str, int] = field(default_factory=dict)  # traceparent insertions by outcome


class Session:
    """Owns every BPF object, link and ring buffer for one target process."""

    def __init__(
        self,
        process: Process,
        plans: list[ProbePlan],
        exporter: SpanExporter,
        clock: BootClock,
        *,
        pid_filter: int | None = None,
        common_constants: Mapping[str, int] | None = None,
        ring_buffer_bytes: int = 8 << 20,
    ) -> None:
        self.ring_buffer_bytes = ring_buffer_bytes
        self.process = process
        # Knobs every object may declare (the sampler); set where declared.
        self.common_constants = dict(common_constants or {})
        self.shared_maps: dict[str, int] = {}  # name -> fd (our own dup)
        self.injector: SocketInjector | None = None
        self.plans = plans
        self.exporter = exporter
        self.clock = clock
        self.pid_filter = process.pid if pid_filter is None else pid_filter
        self.loaded: list[LoadedProbe] = []
        self.stats = SessionStats()

    # -- attach -----------------------------------------------------------------
    def attach(self) -> None:
        """Load and attach every applicable probe; a probe that fails is skipped, not fatal."""
        for plan in self.plans:
            if not plan.linked:
                log.debug("%s: %s", plan.probe.name, plan.skip_reason)
                continue
            if not plan.applies:
                self.stats.skipped[plan.probe.name] = plan.skip_reason or "not applicable"
                continue
            try:
                self.loaded.append(self._load(plan))
            except GotelError as exc:
                self.stats.skipped[plan.probe.name] = str(exc)
        if self.loaded:
            self.injector = start_injector(self.process.pid, self.shared_maps)
        self._report_attach()

    def _load(self, plan: ProbePlan) -> LoadedProbe:
        obj = BpfObject(plan.probe.bpf_object)
        links: list[Link] = []
        try:
            obj.set_constants(plan.constants)
            # Room for bursts between drains: a server event is ~1 KiB.
            obj.set_max_entries(EVENTS_MAP, self.ring_buffer_bytes)
            for name, value in self.common_constants.items():
                try:
                    obj.set_constants({name: value})
                except UnknownNameError:
                    pass
            shared = [m for m in obj.map_names() if m.startswith(SHARED_PREFIX)]
            for name in shared:
                if name in self.shared_maps:
                    obj.reuse_map(name, self.shared_maps[name])
            obj.load()
            for name in shared:
                if name not in self.shared_maps:
                    self.shared_maps[name] = os.dup(obj.map_fd(name))
            # All-or-nothing per probe: a half-attached probe would emit nonsense.
            for hp in plan.hooks:
                if hp.hook.entry:
                    links.append(self._attach(obj, hp.hook.entry, hp.function.file_offset))
                if hp.hook.returns:
                    for offset in hp.return_offsets:
                        links.append(self._attach(obj, hp.hook.returns, offset))
            decode = obj.struct_layout(plan.probe.event).decoder()
            ring = obj.ring_buffer(EVENTS_MAP)
        except BaseException:
            obj.close()  # destroys the links made so far
            raise
        return LoadedProbe(plan, obj, links, ring, decode)

    def _attach(self, obj: BpfObject, program: str, offset: int) -> Link:
        return obj.attach_uprobe(program, self.process.binary, offset, self.pid_filter)

    def _report_attach(self) -> None:
        total = sum(1 for plan in self.plans if plan.linked)
        uprobes = sum(len(lp.links) for lp in self.loaded)
        msg = "pid %d (%s): attached %d/%d probes (%d uprobes), traceparent out: %s"
        args: list[object] = [
            self.process.pid,
            self.process.executable_name,
            len(self.loaded),
            total,
            uprobes,
            "on" if self.injector else "off",
        ]
        if self.stats.skipped:
            msg += "; skipped: %s"
            args.append("; ".join(f"{k} ({v})" for k, v in self.stats.skipped.items()))
        log.info(msg, *args)

    @property
    def attached(self) -> bool:
        return bool(self.loaded)

    # -- read ---------------------------------------------------------------------
    def poll(self) -> int:
        """Drain every ring buffer, export the spans; returns how many spans were made."""
        spans: list[Span] = []
        for lp in self.loaded:
            for raw in lp.ring.drain():
                self.stats.events += 1
                try:
                    span = lp.plan.probe.to_span(lp.decode(raw), self.clock)
                except (ValueError, KeyError, UnicodeError) as exc:
                    self.stats.decode_errors += 1
                    log.warning("%s: undecodable event dropped: %s", lp.plan.probe.name, exc)
                    continue
                if span is not None:
                    spans.append(span)
        if spans:
            self.stats.spans += len(spans)
            self.exporter.export(spans)
        return len(spans)

    def check_lost(self) -> int:
        """Events the kernel could not queue since the last check; reported, never silent."""
        new = 0
        for lp in self.loaded:
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
        return new

    # -- detach -------------------------------------------------------------------
    def close(self) -> None:
        """Read what is left, then remove every probe. Idempotent."""
        if self.loaded:
            try:
                self.poll()
                self.check_lost()
            finally:
                if self.injector is not None:
                    self.injector.close()
                    self.stats.injection = self.injector.reasons()
                    self.injector = None
                for lp in self.loaded:
                    lp.ring.close()
                    lp.obj.close()
                self.loaded = []
                for fd in self.shared_maps.values():
                    os.close(fd)
                self.shared_maps = {}
