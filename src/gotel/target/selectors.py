"""Which processes to instrument: those running an executable (a path or a glob), or the
one listening on a TCP port. A selector answers for one process (just exec'd) or scans all."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Protocol

from gotel.target.process import all_pids, exe_link

GLOB_CHARS = frozenset("*?[")


class Selector(Protocol):
    def __str__(self) -> str: ...

    def matches(self, pid: int) -> bool:
        """Whether this process, as it is now, is selected."""
        ...

    def scan(self) -> list[int]:
        """Every process selected now."""
        ...


class ExecutableSelector:
    """Processes running one file (a path here, matched by device and inode whatever mount
    namespace the process sees it in), an absolute path that exists only in another mount
    namespace (matched by the path the process sees), or a glob over those paths."""

    def __init__(self, pattern: Path | str) -> None:
        self.pattern = str(pattern)
        self.is_glob = bool(GLOB_CHARS & set(self.pattern))
        self._identity: tuple[int, int] | None = None
        if not self.is_glob:
            try:
                st = os.stat(self.pattern)
                self._identity = (st.st_dev, st.st_ino)
            except FileNotFoundError:
                pass

    def __str__(self) -> str:
        return self.pattern

    @property
    def local_file(self) -> Path | None:
        """The file itself when it is visible here (one can prepare for it in advance)."""
        return Path(self.pattern) if self._identity else None

    def matches(self, pid: int) -> bool:
        if self._identity is not None:
            try:
                st = os.stat(f"/proc/{pid}/exe")
            except OSError:
                return False
            return (st.st_dev, st.st_ino) == self._identity
        link = exe_link(pid)
        if link is None:
            return False
        if self.is_glob:
            return fnmatch.fnmatchcase(link, self.pattern)
        return link == self.pattern

    def scan(self) -> list[int]:
        return [pid for pid in all_pids() if self.matches(pid)]


class PortSelector:
    """The process(es) holding a socket that listens on a TCP port (IPv4 or IPv6) in this
    network namespace: found through /proc/net/tcp{,6} (socket inode) and /proc/<pid>/fd."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._owners: dict[int, int] = {}  # socket inode -> pid, as last resolved

    def __str__(self) -> str:
        return f"port {self.port}"

    def matches(self, pid: int) -> bool:
        inodes = listening_inodes(self.port)
        return bool(inodes) and bool(inodes & socket_inodes(pid))

    def scan(self) -> list[int]:
        inodes = listening_inodes(self.port)
        self._owners = {i: p for i, p in self._owners.items() if i in inodes}
        unknown = inodes - self._owners.keys()
        if unknown:  # walking every process's fds is the costly part: only for new sockets
            for pid in all_pids():
                held = socket_inodes(pid) & unknown
                for inode in held:
                    self._owners[inode] = pid
                unknown -= held
                if not unknown:
                    break
        return sorted(set(self._owners.values()))


TCP_LISTEN = "0A"


def listening_inodes(port: int, net: str = "/proc/net") -> set[int]:
    """Inodes of the sockets listening on `port` (lines of /proc/net/tcp and tcp6)."""
    found = set()
    want = f":{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{net}/{name}") as table:
                next(table, None)  # the header
                for line in table:
                    fields = line.split()
                    # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    if len(fields) > 9 and fields[3] == TCP_LISTEN and fields[1].endswith(want):
                        found.add(int(fields[9]))
        except FileNotFoundError:
            continue
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets a process holds open."""
    found = set()
    try:
        entries = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return found
    with entries:
        for entry in entries:
            try:
                link = os.readlink(entry.path)
            except OSError:
                continue
            if link.startswith("socket:["):
                found.add(int(link[8:-1]))
    return found
