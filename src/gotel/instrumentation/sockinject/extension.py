"""The socket-level injector as a process extension.

Probes that know which span a goroutine's next request belongs to fill the
`shared_outgoing` map (and `shared_outgoing_streams` for HTTP/2 streams); when a
process has such probes, the injector inserts that span's traceparent into the
requests its sockets send. Without it spans still work; traces just do not
connect across services.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gotel.errors import GotelError
from gotel.instrumentation.sockinject.injector import OUTGOING_MAP, SocketInjector, check_kernel

log = logging.getLogger(__name__)


class RunningInjector:
    def __init__(self, injector: SocketInjector) -> None:
        self.injector = injector

    def counters(self) -> dict[str, int]:
        return self.injector.reasons()

    def close(self) -> None:
        self.injector.close()


class TraceparentOut:
    name = "traceparent out"
    report = "traceparent insertion"

    def start(self, pid: int, shared_maps: Mapping[str, int]) -> RunningInjector | None:
        if OUTGOING_MAP not in shared_maps:
            return None  # no probe of this process says which span a request belongs to
        injector = SocketInjector(pid, shared_maps=shared_maps)
        try:
            injector.attach()
        except GotelError as exc:
            injector.close()
            log.warning("pid %d: outgoing traceparent off: %s", pid, exc)
            return None
        return RunningInjector(injector)

    def unavailable(self) -> str | None:
        from gotel.ebpf.cgroup import cgroup2_mounts

        try:
            check_kernel()
        except GotelError as exc:
            return str(exc)
        if not cgroup2_mounts():
            return "no cgroup v2 hierarchy is mounted"
        return None


EXTENSIONS = (TraceparentOut(),)
