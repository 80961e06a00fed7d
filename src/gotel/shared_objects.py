"""BPF objects shared by every process whose binary gives a probe the same constants.

One loaded object (programs, rings, maps) per (probe, constants): each process's uprobes
attach to it with links of their own, its state sits under its tgid in the maps
(include/process.h), and the events of all of them come out of one ring pair, handed to
each process's session by the pid they carry. An object no process uses stays loaded for a
while, so that the next process of its layout only has uprobes to attach.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gotel.ebpf import BpfObject, Link, RingBuffer, UnknownNameError, uprobe_multi
from gotel.ebpf.maps import delete_keys_with_prefix
from gotel.ebpf.uprobe_multi import FdLink
from gotel.errors import GotelError
from gotel.instrumentation.events import Event, EventDecoder
from gotel.metrics import HistogramMetric
from gotel.metrics.reader import SERIES_MAP, MetricReader, metric_constants
from gotel.planning import ProbePlan
from gotel.target.process import agent_pid_namespace

log = logging.getLogger(__name__)

EVENTS_MAP = "events"
SPILL_MAP = "events_spill"  # where records go that the events ring refused
LOST_MAP = "events_lost"
SPILLED_MAP = "events_spilled"
# Maps with these prefixes have one instance per agent, reused by every object that
# declares them: shared_* hold per-process state several probes share (the span of each
# goroutine, of each context), node_* state that crosses processes (a producer's span
# context for the consumer of its message).
AGENT_PREFIXES = ("shared_", "node_")
# A map whose key struct starts with this member holds per-process state (process.h).
PROCESS_KEY_MEMBER = "tgid"
# Objects no process uses that stay loaded (each holds its rings: 8.25 MiB by default), the
# least recently used closed first.
IDLE_KEPT = 24
ObjectKey = tuple[str, str, tuple[tuple[str, object], ...]]


def object_key(plan: ProbePlan) -> ObjectKey:
    """What makes two processes' plans of a probe share one object: the same constants."""
    constants = tuple(sorted(plan.constants.items()))
    return plan.probe.name, str(plan.probe.bpf_object), constants


class EventSink(Protocol):
    def take(self, use: ProbeUse, events: list[Event]) -> None:
        """The events of one process's use of an object, in ring order."""

    def lost(self, count: int) -> None:
        """Events of this process the kernel could not queue."""


@dataclass(eq=False)
class ProbeUse:
    """One process's use of a shared object: its plan, its links, where its events go."""

    plan: ProbePlan
    shared: ProbeObject
    sink: EventSink
    links: list[Link | FdLink] = field(default_factory=list)

    @property
    def rings(self) -> tuple[RingBuffer, ...]:
        return self.shared.rings

    @property
    def decoder(self) -> EventDecoder | None:
        return self.shared.decoder


@dataclass
class DrainStats:
    events: int = 0
    decode_errors: int = 0
    unrouted: int = 0  # events of a pid no session has (detached meanwhile)
    lost: int = 0  # events the kernel could not queue, not told to one process
    spilled: int = 0  # events the spill ring took, as of the last check (over closed ones too)
    drain_cpu_s: float = 0.0
    decode_cpu_s: float = 0.0

    def add(self, other: DrainStats, spilled: int) -> None:
        """Add an object's counts (`spilled`: its spill count, read from the kernel)."""
        self.events += other.events
        self.decode_errors += other.decode_errors
        self.unrouted += other.unrouted
        self.lost += other.lost
        self.spilled += spilled
        self.drain_cpu_s += other.drain_cpu_s
        self.decode_cpu_s += other.decode_cpu_s


@dataclass(eq=False)
class ProbeObject:
    """One loaded object and the processes it serves (pid -> their use of it)."""

    key: ObjectKey
    name: str  # the probe's
    obj: BpfObject
    rings: tuple[RingBuffer, ...]  # events, then the spill ring
    decoder: EventDecoder | None  # None: no events ring (a router's probe fills a map)
    metrics: MetricReader | None  # its RED histograms, when metrics are on
    multi: bool  # its programs attach as uprobe_multi links
    process_maps: tuple[str, ...]  # its own maps keyed by process (not agent-wide ones)
    stats: DrainStats
    users: dict[int, ProbeUse] = field(default_factory=dict)
    # Draining (the agent's loop, a detaching thread) and closing exclude one another.
    lock: threading.Lock = field(default_factory=threading.Lock)
    lost_reported: int = 0
    spilled_reported: int = 0
    idle_since: float = 0.0
    closed: bool = False

    def drain(self) -> int:
        """Read both rings, hand each process its events; returns the events read."""
        if not self.rings:
            return 0
        read = 0
        with self.lock:
            if self.closed:
                return 0
            for ring in self.rings:
                read += self._read(ring)
        return read

    def _read(self, ring: RingBuffer) -> int:
        decoder, stats = self.decoder, self.stats
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
            log.warning("%s: undecodable events dropped: %s", self.name, exc)
            return count + len(odd)
        stats.decode_cpu_s += time.thread_time() - t1
        stats.events += len(events)
        users = self.users
        if len(users) == 1:
            [(pid, use)] = users.items()
            if all(e["pid"] == pid for e in events):
                use.sink.take(use, events)
                return len(events)
        by_pid: dict[int, list[Event]] = {}
        for event in events:
            by_pid.setdefault(event["pid"], []).append(event)
        for pid, mine in by_pid.items():
            found = users.get(pid)
            if found is not None:
                found.sink.take(found, mine)
            else:
                if not stats.unrouted:
                    log.warning("%s: events of pid %d, which no session has, dropped "
                                "(counted from now on)", self.name, pid)
                stats.unrouted += len(mine)
        return len(events)

    def check_lost(self) -> int:
        """Events the kernel could not queue since the last check (logged, never silent)."""
        with self.lock:  # not while another thread closes it
            if not self.rings or self.closed:
                return 0
            lost = self.obj.percpu_sum(LOST_MAP)
            self.spilled_reported = self.obj.percpu_sum(SPILLED_MAP)
        delta, self.lost_reported = lost - self.lost_reported, lost
        if delta > 0:
            whose = (f"pid {next(iter(self.users))}: {self.name}" if len(self.users) == 1
                     else f"{self.name} (shared by pids {', '.join(map(str, sorted(self.users)))})")
            log.warning("%s lost %d events (ring buffer full; %d in total)", whose, delta, lost)
        return max(delta, 0)

    def read_metrics(self, pids: Collection[int]) -> dict[int, HistogramMetric]:
        """The RED series of these processes, by pid (none once closed, or metrics off)."""
        with self.lock:
            if self.metrics is None or self.closed:
                return {}
            return self.metrics.read_by_pid(pids)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for ring in self.rings:
                ring.close()
            self.obj.close()  # destroys its links


@dataclass
class _AgentMap:
    fd: int  # our own dup
    key_size: int
    max_entries: int
    per_process: bool


class ObjectPool:
    """Every object the agent has loaded, by (probe, constants), and the agent-wide maps
    (shared_*, node_*) they reuse. Thread-safe: the agent's loop attaches, a worker loads
    objects ahead, detaching threads release."""

    def __init__(
        self,
        *,
        ring_buffer_bytes: int = 8 << 20,
        common_constants: Mapping[str, int | str] | None = None,
        metric_series_limit: int = 0,
        idle_kept: int = IDLE_KEPT,
    ) -> None:
        """`common_constants`: knobs every object may declare (the sampler), set where
        declared. `metric_series_limit`: the RED series each object may count (0: off)."""
        self.ring_buffer_bytes = ring_buffer_bytes
        self.common_constants = dict(common_constants or {})
        self.common_constants.update(agent_pid_namespace())
        self.metric_series_limit = metric_series_limit
        self.idle_kept = idle_kept
        self.objects: dict[ObjectKey, ProbeObject] = {}
        self.maps: dict[str, _AgentMap] = {}
        # Loads are serialised: two objects made at once would each create the agent maps.
        self._lock = threading.RLock()
        self.closed_stats = DrainStats()  # of objects closed already
        # Kernel tgids are the agent's pids only in the initial pid namespace: a process's
        # map entries can be found by its pid there, and only there.
        self._forget_by_pid = "agent_pidns_ino" not in self.common_constants

    # -- loading --------------------------------------------------------------------------
    def acquire(self, plan: ProbePlan) -> ProbeObject:
        """The loaded object for this plan's probe and constants (loaded now if need be).
        Raises GotelError when it cannot load."""
        key = object_key(plan)
        with self._lock:
            found = self.objects.get(key)
            if found is None:
                found = self.objects[key] = self._load(key, plan)
            return found

    def prepare(self, plans: Sequence[ProbePlan]) -> dict[str, str]:
        """Load ahead the objects of every applicable plan (idle until a process uses them);
        returns the probes that cannot load, with why."""
        failed: dict[str, str] = {}
        for plan in plans:
            if plan.linked and plan.applies:
                try:
                    shared = self.acquire(plan)
                except GotelError as exc:
                    failed[plan.probe.name] = str(exc)
                    continue
                with self._lock:
                    if not shared.users and not shared.idle_since:
                        shared.idle_since = time.monotonic()
        self._trim()
        return failed

    def _load(self, key: ObjectKey, plan: ProbePlan) -> ProbeObject:
        obj = BpfObject(plan.probe.bpf_object)
        try:
            obj.set_constants(plan.constants)
            names = obj.map_names()
            # Room for bursts between drains: a server event is ~1 KiB. An object without an
            # events ring (a router's probe only fills a shared map) emits no events.
            if EVENTS_MAP in names:
                obj.set_max_entries(EVENTS_MAP, self.ring_buffer_bytes)
            metric = plan.probe.metric if self.metric_series_limit else None
            if metric is not None and SERIES_MAP in names:
                obj.set_constants(metric_constants(metric))
                obj.set_max_entries(SERIES_MAP, self.metric_series_limit)
            else:
                metric = None
            for name, value in self.common_constants.items():
                try:
                    obj.set_constants({name: value})
                except UnknownNameError:
                    pass
            agent_maps = [name for name in names if name.startswith(AGENT_PREFIXES)]
            for name in agent_maps:
                if name in self.maps:
                    obj.reuse_map(name, self.maps[name].fd)
            multi = uprobe_multi.supported()
            for program in programs_of(plan) if multi else ():
                obj.use_uprobe_multi(program)
            obj.load()
            per_process = {name for name in names if _keyed_by_process(obj, name)}
            for name in agent_maps:
                if name not in self.maps:
                    self.maps[name] = _AgentMap(os.dup(obj.map_fd(name)), obj.key_size(name),
                                                obj.max_entries(name), name in per_process)
            rings = tuple(obj.ring_buffer(name) for name in (EVENTS_MAP, SPILL_MAP)
                          if name in names)
            decoder = EventDecoder(obj.struct_layout(plan.probe.event)) if rings else None
        except BaseException:
            obj.close()
            raise
        probe = plan.probe
        metrics = MetricReader(obj, metric, probe.scope) if metric is not None else None
        own = tuple(sorted(n for n in per_process if not n.startswith(AGENT_PREFIXES)))
        return ProbeObject(key, probe.name, obj, rings, decoder, metrics, multi, own,
                           DrainStats())

    # -- users ----------------------------------------------------------------------------
    def add_use(self, plan: ProbePlan, pid: int, sink: EventSink) -> ProbeUse:
        """The process's use of the plan's object (loaded now if need be), registered at
        once, so that an idle object is never closed under it; its events go to `sink`.
        Raises GotelError when the object cannot load."""
        with self._lock:
            shared = self.acquire(plan)
            use = ProbeUse(plan, shared, sink)
            shared.users[pid] = use
            shared.idle_since = 0.0
            return use

    def remove_user(self, shared: ProbeObject, pid: int) -> None:
        """The process no longer uses the object (its links are gone, its events read)."""
        with self._lock:
            shared.users.pop(pid, None)
            if shared.metrics is not None:
                try:
                    shared.metrics.forget(pid)
                except GotelError as exc:
                    log.debug("%s: pid %d: series not removed: %s", shared.name, pid, exc)
            if self._forget_by_pid:
                prefix = pid.to_bytes(4, "little")
                for name in shared.process_maps:
                    self._forget(name, shared.obj.map_fd(name), shared.obj.key_size(name),
                                 shared.obj.max_entries(name), prefix)
            if not shared.users:
                shared.idle_since = time.monotonic()
        self._trim()

    def forget_process(self, pid: int) -> None:
        """Remove a detached process's entries from the agent-wide per-process maps: a
        later process given its pid must not inherit a span it never started."""
        if not self._forget_by_pid:
            return  # LRU maps age them out
        prefix = pid.to_bytes(4, "little")
        with self._lock:
            for name, m in self.maps.items():
                if m.per_process:
                    self._forget(name, m.fd, m.key_size, m.max_entries, prefix)

    @staticmethod
    def _forget(name: str, fd: int, key_size: int, bound: int, prefix: bytes) -> None:
        removed = delete_keys_with_prefix(fd, key_size, prefix, bound)
        if removed:
            log.debug("map %s: %d entries of a detached process removed", name, removed)

    def _trim(self) -> None:
        with self._lock:
            idle = sorted((o for o in self.objects.values() if not o.users),
                          key=lambda o: o.idle_since)
            for shared in idle[: max(0, len(idle) - self.idle_kept)]:
                self._close_object(shared)

    def _close_object(self, shared: ProbeObject) -> None:
        self.objects.pop(shared.key, None)
        shared.check_lost()
        shared.close()
        self.closed_stats.add(shared.stats, shared.spilled_reported)

    # -- reading --------------------------------------------------------------------------
    def poll(self) -> int:
        """Drain every object's rings; returns the events read."""
        return sum(shared.drain() for shared in list(self.objects.values()))

    def check_lost(self, objects: Collection[ProbeObject] | None = None) -> None:
        """Count what the kernel could not queue: to the process an object serves alone,
        else to the agent (a shared ring's losses have no one owner)."""
        for shared in list(self.objects.values()) if objects is None else objects:
            delta = shared.check_lost()
            if delta:
                users = list(shared.users.values())
                if len(users) == 1:
                    users[0].sink.lost(delta)
                else:
                    shared.stats.lost += delta

    def totals(self) -> DrainStats:
        """Over every object, closed ones included."""
        total = DrainStats(**vars(self.closed_stats))
        for shared in list(self.objects.values()):
            total.add(shared.stats, shared.spilled_reported)
        return total

    def counts(self) -> tuple[int, int]:
        """(objects loaded, of which in use)."""
        objects = list(self.objects.values())
        return len(objects), sum(1 for o in objects if o.users)

    def close(self) -> None:
        """Close every object and agent-wide map. Idempotent."""
        with self._lock:
            for shared in list(self.objects.values()):
                self._close_object(shared)
            for m in self.maps.values():
                os.close(m.fd)
            self.maps = {}


def _keyed_by_process(obj: BpfObject, map_name: str) -> bool:
    member = obj.map_key_fields(map_name).get(PROCESS_KEY_MEMBER)
    return member is not None and member.offset == 0


def offsets_by_program(plan: ProbePlan) -> dict[str, list[int]]:
    """Each program of a plan with the file offsets it attaches at, in order, once each."""
    found: dict[str, dict[int, None]] = {}
    for hp in plan.hooks:
        if hp.hook.entry:
            found.setdefault(hp.hook.entry, {})[hp.function.file_offset] = None
        if hp.hook.returns:
            for offset in hp.return_offsets:
                found.setdefault(hp.hook.returns, {})[offset] = None
    return {program: list(offsets) for program, offsets in found.items() if offsets}


def programs_of(plan: ProbePlan) -> list[str]:
    return list(offsets_by_program(plan))
