"""Where a process's cgroup v2 directory is, for BpfObject.attach_cgroup().

Read from /proc: `/proc/PID/cgroup` gives the process's cgroup v2 path (the "0::" line,
relative to our cgroup namespace) and `/proc/self/mountinfo` where the v2 hierarchy is
mounted here (/sys/fs/cgroup on unified systems, /sys/fs/cgroup/unified on hybrid ones).
"""

from __future__ import annotations

import re
from pathlib import Path

from gotel.errors import NotSupportedError, TargetError

_MOUNT_HINT = "mount it: mount -t cgroup2 none /sys/fs/cgroup/unified"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def cgroup2_mounts(mountinfo: str | None = None) -> list[tuple[str, Path]]:
    """(root of the hierarchy shown, mount point) of every cgroup2 mount we can see."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep + 1 < len(fields) and fields[sep + 1] == "cgroup2" and len(fields) > 4:
            mounts.append((_unescape(fields[3]), Path(_unescape(fields[4]))))
    return mounts


def process_cgroup2_path(pid: int) -> str:
    """The process's cgroup v2 path, e.g. "/system.slice/app.service"."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        raise TargetError(f"process {pid}: not running") from None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].removesuffix(" (deleted)")
    raise NotSupportedError(
        f"process {pid}: not in a cgroup v2 hierarchy (only cgroup v1 here); {_MOUNT_HINT}"
    )


def cgroup2_dir(pid: int) -> Path:
    """The directory of the process's cgroup v2, in our mount namespace."""
    path = process_cgroup2_path(pid)
    mounts = cgroup2_mounts()
    if not mounts:
        raise NotSupportedError(f"process {pid}: cgroup v2 is not mounted; {_MOUNT_HINT}")
    for root, mount_point in mounts:
        if path == root or path.startswith(root.rstrip("/") + "/"):
            inside = path[len(root) :].lstrip("/")
            directory = mount_point / inside if inside else mount_point
            if directory.is_dir():
                return directory
    raise NotSupportedError(
        f"process {pid}: its cgroup {path} is under none of the cgroup2 mounts here "
        f"({', '.join(str(m) for _, m in mounts)}): mount the hierarchy's root"
    )


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)
