"""Helpers shared by probes to turn raw event fields into span values."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=4096)
def split_host_port(hostport: str) -> tuple[str, int | None]:
    """"host:port", "[v6]:port", "host" -> (host, port or None)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return hostport, None
        host, rest = hostport[1:end], hostport[end + 1 :]
        return host, _port(rest[1:]) if rest.startswith(":") else None
    if hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
        return host, _port(port)
    return hostport, None


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None
