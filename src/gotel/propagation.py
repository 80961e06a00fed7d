"""Outgoing trace context for a process: the socket-level injector.

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
from gotel.instrumentation.sockinject.injector import OUTGOING_MAP, SocketInjector

log = logging.getLogger(__name__)


def start_injector(pid: int, shared_maps: Mapping[str, int]) -> SocketInjector | None:
    """The running injector for pid, or None (not needed, or not possible: logged once)."""
    fd = shared_maps.get(OUTGOING_MAP)
    if fd is None:
        return None
    injector = SocketInjector(pid, shared_maps=shared_maps)
    try:
        injector.attach()
    except GotelError as exc:
        injector.close()
        log.warning("pid %d: outgoing traceparent off: %s", pid, exc)
        return None
    return injector


def injection_unavailable() -> str | None:
    """Why this machine cannot insert traceparent at the socket layer; None when it can."""
    from gotel.ebpf.cgroup import cgroup2_mounts
    from gotel.instrumentation.sockinject.injector import check_kernel

    try:
        check_kernel()
    except GotelError as exc:
        return str(exc)
    if not cgroup2_mounts():
        return "no cgroup v2 hierarchy is mounted"
    return None


def summary(reasons: Mapping[str, int]) -> str:
    """'injected 12, tls 3' — the non-zero counters, for the detach line."""
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()) if v) or "no requests"
