"""Processes to instrument: by PID, by executable, or started by gotel itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gotel.errors import MissingPrivilegeError, TargetError


@dataclass(frozen=True)
class Process:
    pid: int
    # Where uprobes attach: /proc/<pid>/exe reaches the binary even inside
    # another mount namespace (a container's image).
    binary: Path
    executable_path: str  # as the process sees it, for resource attributes

    @property
    def executable_name(self) -> str:
        return os.path.basename(self.executable_path)

    def alive(self) -> bool:
        return is_alive(self.pid)


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # A zombie has exited; its uprobes are gone with its mm.
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def process_from_pid(pid: int) -> Process:
    if pid <= 0:
        raise TargetError(f"pid {pid}: not a valid process id")
    if not is_alive(pid):
        raise TargetError(f"pid {pid}: no such process")
    exe = Path(f"/proc/{pid}/exe")
    try:
        target = os.readlink(exe)
    except PermissionError as exc:
        raise MissingPrivilegeError(
            f"pid {pid}: cannot read {exe}: missing privileges "
            "(run gotel as root or grant CAP_SYS_PTRACE)"
        ) from exc
    except FileNotFoundError as exc:
        raise TargetError(f"pid {pid}: process exited") from exc
    if target.endswith(" (deleted)"):
        target = target[: -len(" (deleted)")]
    return Process(pid, exe, target)


def exe_link(pid: int) -> str | None:
    """The executable's path as the process sees it; None when unreadable or gone."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None


def all_pids() -> list[int]:
    return sorted(int(e.name) for e in os.scandir("/proc") if e.name.isdigit())


def binary_identity(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    """What tells one executable file from another (device, inode, size, change time):
    the same identity means the same analysis and the same probes."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def resolve_executable(command: str) -> Path:
    """A command as `exec` would find it: a path, or a name on PATH."""
    from shutil import which

    path = Path(command) if "/" in command else Path(which(command) or command)
    if not path.exists():
        raise TargetError(f"{command}: no such file")
    if not os.access(path, os.X_OK) or path.is_dir():
        raise TargetError(f"{command}: not an executable file")
    return path.resolve()


_HOLD = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "os.read(fd, 1)\n"
    "os.close(fd)\n"
    "os.execv(sys.argv[2], sys.argv[3:])\n"
)


class HeldLaunch:
    """A program started but held before exec, so probes attach before its first instruction.

    A small wrapper waits on a pipe, then execs the program in place: the PID
    the probes filter on is the program's own from its first instruction on.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        stdout: int | IO[bytes] | None = None,
    ) -> None:
        if not argv:
            raise TargetError("nothing to run (usage: gotel run -- ./app args...)")
        self.executable = resolve_executable(argv[0])
        read_end, self._release = os.pipe()
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _HOLD, str(read_end), str(self.executable), *argv],
                pass_fds=(read_end,),
                env=env,
                stdout=stdout,
            )
        finally:
            os.close(read_end)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def release(self) -> None:
        """Let the program start (exec); safe to call twice."""
        if self._release >= 0:
            os.write(self._release, b"1")
            os.close(self._release)
            self._release = -1


def agent_pid_namespace() -> dict[str, int]:
    """include/process.h's agent_pidns_* constants when gotel is not in the initial pid
    namespace (a sidecar's): BPF programs then give pids as gotel sees them."""
    init_ino = 0xEFFFFFFC  # PROC_PID_INIT_INO: the initial namespace's inode, fixed
    try:
        st = os.stat("/proc/self/ns/pid")
    except OSError:
        return {}
    if st.st_ino == init_ino:
        return {}
    return {"agent_pidns_dev": st.st_dev, "agent_pidns_ino": st.st_ino}
