"""Attachments other than uprobes: a program on a cgroup v2 directory (a bpf_link), and a
program on a socket map (sk_msg: `bpf_prog_attach`, which gets a link only in Linux 6.10).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os

from gotel.ebpf import libbpf
from gotel.errors import AttachError, GotelError, MissingPrivilegeError

log = logging.getLogger(__name__)

_PRIVILEGE_HINT = "run as root, or grant CAP_BPF and CAP_NET_ADMIN"


def open_cgroup(path: str | os.PathLike[str], where: str) -> int:
    """An O_RDONLY fd of a cgroup v2 directory, for attaching; the caller closes it."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AttachError(f"{where}: no such cgroup directory") from None
    except NotADirectoryError:
        raise AttachError(f"{where}: not a directory") from None
    except PermissionError:
        raise MissingPrivilegeError(f"{where}: permission denied ({_PRIVILEGE_HINT})") from None


def attach_cgroup(prog: int, cgroup_path: str | os.PathLike[str], where: str) -> int:
    """Attach a `struct bpf_program *` to a cgroup v2 directory; returns the bpf_link."""
    cgroup_fd = open_cgroup(cgroup_path, where)
    try:
        with libbpf.capture_messages() as messages:
            ptr, err = libbpf.check_ptr(libbpf.lib().bpf_program__attach_cgroup(prog, cgroup_fd))
    finally:
        os.close(cgroup_fd)  # the link holds the cgroup
    if not ptr:
        if err in (errno.EPERM, errno.EACCES):
            raise MissingPrivilegeError(f"{where}: {libbpf.strerror(err)} ({_PRIVILEGE_HINT})")
        if err == errno.EBADF:  # cgroup_get_from_fd() refuses cgroup v1 directories
            raise AttachError(f"{where}: not a cgroup v2 directory")
        raise AttachError(f"{where}: {libbpf.strerror(err)}")
    libbpf.replay_warnings(messages)
    log.debug("attached %s", where)
    return ptr


def program_id(prog_fd: int) -> int:
    """The kernel's id of a loaded program (what `bpftool prog show id` takes)."""
    # struct bpf_prog_info begins with __u32 type, __u32 id; the kernel copies only as
    # much as we ask for.
    info = (ctypes.c_uint32 * 2)()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    err = libbpf.lib().bpf_obj_get_info_by_fd(prog_fd, info, ctypes.byref(size))
    if err < 0:
        raise GotelError(f"program fd {prog_fd}: cannot read its info: {libbpf.strerror(err)}")
    return int(info[1])


class MapAttachment:
    """A program attached to a map with bpf_prog_attach (e.g. sk_msg on a sockhash).

    Holds its own duplicates of the program and map fds, so that destroy() detaches even
    after the owning object was closed. Sockets already in the map keep the program (the
    kernel copies it into each socket's state when the socket enters the map) until they
    leave the map: remove them to detach from live sockets.
    """

    def __init__(self, prog_fd: int, map_fd: int, attach_type: int, description: str) -> None:
        self.description = description
        self._attach_type = attach_type
        self._fds: tuple[int, int] | None = None
        prog_dup = os.dup(prog_fd)
        map_dup = os.dup(map_fd)
        err = libbpf.lib().bpf_prog_attach(prog_dup, map_dup, attach_type, 0)
        if err < 0:
            os.close(prog_dup)
            os.close(map_dup)
            hint = f" ({_PRIVILEGE_HINT})" if -err in (errno.EPERM, errno.EACCES) else ""
            error = MissingPrivilegeError if hint else AttachError
            raise error(f"{description}: {libbpf.strerror(err)}{hint}")
        self._fds = (prog_dup, map_dup)
        log.debug("attached %s", description)

    @property
    def active(self) -> bool:
        return self._fds is not None

    def destroy(self) -> None:
        """Detach and close the fds. Idempotent."""
        fds, self._fds = self._fds, None
        if fds is None:
            return
        prog_fd, map_fd = fds
        try:
            err = libbpf.lib().bpf_prog_detach2(prog_fd, map_fd, self._attach_type)
            if err < 0:
                log.warning("%s: detach failed: %s", self.description, libbpf.strerror(err))
        finally:
            os.close(prog_fd)
            os.close(map_fd)

    def __enter__(self) -> MapAttachment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return f"MapAttachment({self.description!r}{'' if self.active else ', destroyed'})"
