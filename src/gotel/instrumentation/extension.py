"""A process extension: something that runs beside a target's probes for as long as the
target is attached (today: inserting outgoing traceparent at the socket layer).

The core makes one instance of every extension class a library folder declares (`extension`
module, `EXTENSIONS`) per agent, starts it for each process once the process's probes are
attached, reports whether it runs, and prints its counters when the process is detached; it
knows nothing else about them. An instance serves all of the agent's processes, so it may
share work between them (one socket injector per cgroup).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Running(Protocol):
    """An extension started for one process."""

    def counters(self) -> dict[str, int]:
        """What it did, by outcome (read before close())."""
        ...

    def close(self) -> None: ...


class Extension(Protocol):
    # "traceparent out": the attach line says "<name>: on" or "off".
    name: str
    # "traceparent insertion": the detach line gives "<report>: <counters>".
    report: str

    def start(self, pid: int, shared_maps: Mapping[str, int]) -> Running | None:
        """Started for pid, or None when not needed or not possible (it logs why, once).
        `shared_maps`: the agent-wide BPF maps (shared_*, node_*) the process's objects
        use, by name (fds stay the caller's)."""
        ...

    def unavailable(self) -> str | None:
        """Why this machine cannot run it at all; None when it can."""
        ...

    def close(self) -> None:
        """The agent is done: release what it kept between processes."""
        ...


def format_counters(counters: Mapping[str, int]) -> str:
    """'injected 12, tls 3': the non-zero counters, for the detach line."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counters.items()) if v) or "nothing seen"
