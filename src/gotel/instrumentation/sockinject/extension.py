"""The socket-level injector as a process extension.

Probes that know which span a goroutine's next request belongs to fill the
`shared_outgoing` map (and `shared_outgoing_streams` for HTTP/2 streams); when a
process has such probes, the injector inserts that span's traceparent into the
requests its sockets send. Without it spans still work; traces just do not
connect across services.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from gotel.ebpf.cgroup import cgroup2_dir
from gotel.errors import GotelError
from gotel.instrumentation.sockinject.injector import OUTGOING_MAP, SocketInjector, check_kernel

log = logging.getLogger(__name__)

# A cgroup's injector stays loaded this long after its last target went: a target that
# restarts (a new pid in the same cgroup) then has its traceparent out at once, not after
# the ~1 s a load takes.
IDLE_KEEP_S = 30.0


class RunningInjector:
    """One process's share of its cgroup's injector."""

    def __init__(self, owner: TraceparentOut, cgroup: str, pid: int) -> None:
        self.owner, self.cgroup, self.pid = owner, cgroup, pid

    def counters(self) -> dict[str, int]:
        injector = self.owner.injectors.get(self.cgroup)
        return injector.reasons(self.pid) if injector is not None else {}

    def close(self) -> None:
        self.owner.leave(self.cgroup, self.pid)


class TraceparentOut:
    """One injector (a sockops and an sk_msg program) per cgroup, whatever the number of
    target processes in it: each program runs for every socket of its cgroup, so a second
    pair for the same cgroup would only double the work."""

    name = "traceparent out"
    report = "traceparent insertion"

    def __init__(self, idle_keep_s: float = IDLE_KEEP_S) -> None:
        self.injectors: dict[str, SocketInjector] = {}  # cgroup path -> its injector
        self.idle_keep_s = idle_keep_s
        self._idle_since: dict[str, float] = {}  # cgroup path -> when its last target went
        self._lock = threading.Lock()  # started and closed from several threads

    def start(self, pid: int, shared_maps: Mapping[str, int]) -> RunningInjector | None:
        if OUTGOING_MAP not in shared_maps:
            return None  # no probe of this process says which span a request belongs to
        try:
            cgroup = str(cgroup2_dir(pid))
        except GotelError as exc:
            log.warning("pid %d: outgoing traceparent off: %s", pid, exc)
            return None
        with self._lock:
            self._close_idle(keep=cgroup)
            injector = self.injectors.get(cgroup)
            try:
                if injector is not None:
                    self._idle_since.pop(cgroup, None)
                    added = injector.add_target(pid)
                    log.info("pid %d: traceparent injection joined cgroup %s's (%d open "
                             "connections added)", pid, cgroup, added)
                else:
                    injector = SocketInjector(pid, shared_maps=shared_maps)
                    try:
                        injector.attach()
                    except BaseException:
                        injector.close()
                        raise
                    self.injectors[cgroup] = injector
            except GotelError as exc:
                log.warning("pid %d: outgoing traceparent off: %s", pid, exc)
                return None
        return RunningInjector(self, cgroup, pid)

    def leave(self, cgroup: str, pid: int) -> None:
        """The process is detached: the cgroup's injector stops serving it, and goes
        idle_keep_s after no process is left (unless one comes meanwhile)."""
        with self._lock:
            injector = self.injectors.get(cgroup)
            if injector is None:
                return
            try:
                injector.remove_target(pid)
            except GotelError as exc:  # its messages pass untouched once it is gone anyway
                log.debug("pid %d: %s", pid, exc)
            if not injector.targets:
                self._idle_since[cgroup] = time.monotonic()
            self._close_idle()

    def _close_idle(self, keep: str | None = None) -> None:
        """Close the injectors idle for longer than idle_keep_s (but `keep`'s)."""
        now = time.monotonic()
        for cgroup, since in list(self._idle_since.items()):
            if cgroup != keep and now - since >= self.idle_keep_s:
                del self._idle_since[cgroup]
                self.injectors.pop(cgroup).close()

    def close(self) -> None:
        """The agent is done: close every injector, idle or not. Idempotent."""
        with self._lock:
            for injector in self.injectors.values():
                injector.close()
            self.injectors, self._idle_since = {}, {}

    def unavailable(self) -> str | None:
        from gotel.ebpf.cgroup import cgroup2_mounts

        try:
            check_kernel()
        except GotelError as exc:
            return str(exc)
        if not cgroup2_mounts():
            return "no cgroup v2 hierarchy is mounted"
        return None


EXTENSIONS = (TraceparentOut,)
