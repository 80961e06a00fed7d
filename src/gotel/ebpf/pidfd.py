"""Borrowing another process's file descriptors: pidfd_open(2) and pidfd_getfd(2) (5.6).

A duplicate obtained this way refers to the same open file (e.g. the same socket) as the
target's descriptor; closing the duplicate does not affect the target.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

from gotel.errors import MissingPrivilegeError, NotSupportedError, TargetError

# The same number on every architecture: syscalls added after 5.0 share one table.
SYS_PIDFD_GETFD = 438

_libc: ctypes.CDLL | None = None


def _syscall() -> Callable[..., int]:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


class PidFd:
    """A pidfd of a running process. Use as a context manager or call close()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            raise TargetError(f"process {pid}: not running") from None
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                raise NotSupportedError("pidfd_open: not supported (Linux >= 5.3)") from None
            raise TargetError(f"process {pid}: pidfd_open failed: {exc.strerror}") from None

    def getfd(self, target_fd: int) -> int:
        """A duplicate (close-on-exec) of the process's descriptor `target_fd`.

        MissingPrivilegeError when we may not ptrace the process; OSError (EBADF) when it
        has no such descriptor (any more).
        """
        if self._fd is None:
            raise TargetError(f"process {self.pid}: pidfd closed")
        fd = _syscall()(
            ctypes.c_long(SYS_PIDFD_GETFD),
            ctypes.c_int(self._fd),
            ctypes.c_int(target_fd),
            ctypes.c_uint(0),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise NotSupportedError("pidfd_getfd: not supported (Linux >= 5.6)")
        if err == errno.EPERM:
            raise MissingPrivilegeError(
                f"process {self.pid}: pidfd_getfd not permitted (needs ptrace access: run as "
                "root with CAP_SYS_PTRACE, and kernel.yama.ptrace_scope < 3)"
            )
        if err == errno.ESRCH:
            raise TargetError(f"process {self.pid}: not running")
        raise OSError(err, os.strerror(err))

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> PidFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
