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
from collections.abc import Mapping

from gotel.ebpf.cgroup import cgroup2_dir
from gotel.errors import GotelError
from gotel.instrumentation.sockinject.injector import OUTGOING_MAP, SocketInjector, check_kernel

log = logging.getLogger(__name__)


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

    def __init__(self) -> None:
        self.injectors: dict[str, SocketInjector] = {}  # cgroup path -> its injector
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
            injector = self.injectors.get(cgroup)
            try:
                if injector is not None:
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
        """The process is detached: the cgroup's injector stops serving it, and goes when
        no process is left."""
        with self._lock:
            injector = self.injectors.get(cgroup)
            if injector is None:
                return
            injector.remove_target(pid)
            if not injector.targets:
                del self.injectors[cgroup]
                injector.close()

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
