"""Many uprobes of one program as one link (BPF_TRACE_UPROBE_MULTI, Linux 6.6).

Why: each single uprobe is a perf event whose removal waits for RCU grace periods while
holding the kernel's trace event mutex, which every uprobe creation on the machine also
takes. Removing a process's 40 uprobes one by one took 2 s on a quiet 2-core machine (and
blocked attaching to any other process meanwhile); a multi link is created and removed
in one step, one grace period, outside that mutex.

libbpf 1.1 predates these links: the program's expected attach type is set through
libbpf before load, the link is created with the bpf(2) syscall directly.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
from collections.abc import Sequence
from functools import cache

from gotel.ebpf import libbpf
from gotel.errors import AttachError, GotelError

log = logging.getLogger(__name__)

BPF_LINK_CREATE = 28  # enum bpf_cmd
BPF_TRACE_UPROBE_MULTI = 48  # enum bpf_attach_type (Linux 6.6)
BPF_PROG_TYPE_KPROBE = 2
_NR_BPF = 321  # x86_64
# union bpf_attr, link_create: prog_fd, target_fd, attach_type, flags, then
# uprobe_multi {u64 path, offsets, ref_ctr_offsets, cookies; u32 cnt, flags, pid}.
_LINK_CREATE = struct.Struct("<IIII QQQQ III")
_ATTR_SIZE = 128  # zero tail: the kernel checks that fields it does not know are 0
_MOV_R0_0_EXIT = bytes.fromhex("b700000000000000" "9500000000000000")

_libc: ctypes.CDLL | None = None


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    ret = _libc.syscall(_NR_BPF, cmd, attr, len(attr))
    return ret if ret >= 0 else -ctypes.get_errno()


def create(prog_fd: int, path: str, offsets: Sequence[int], pid: int) -> int:
    """A uprobe_multi link of `prog_fd` at file `offsets` of `path`, for process `pid`
    (0: every process); returns the link fd. Raises AttachError (FileNotFoundError when
    `path` does not exist)."""
    if not offsets:
        raise AttachError(f"uprobe_multi at {path}: no offsets")
    path_buf = ctypes.create_string_buffer(os.fsencode(path))
    offs = (ctypes.c_uint64 * len(offsets))(*offsets)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    _LINK_CREATE.pack_into(
        attr, 0, prog_fd, 0, BPF_TRACE_UPROBE_MULTI, 0,
        ctypes.addressof(path_buf), ctypes.addressof(offs), 0, 0,
        len(offsets), 0, max(pid, 0),
    )  # fmt: skip
    fd = _bpf(BPF_LINK_CREATE, attr)
    if fd == -errno.ENOENT:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if fd < 0:
        raise AttachError(
            f"uprobe_multi at {path} ({len(offsets)} offsets) pid {pid}: {os.strerror(-fd)}"
        )
    return fd


@cache
def supported() -> bool:
    """Whether this kernel has uprobe_multi links: a link asked for on a path that does
    not exist fails with ENOENT where they exist (the path is looked up), EINVAL where not."""
    opts = libbpf.BpfProgLoadOpts(
        sz=ctypes.sizeof(libbpf.BpfProgLoadOpts), expected_attach_type=BPF_TRACE_UPROBE_MULTI
    )
    prog = libbpf.lib().bpf_prog_load(
        BPF_PROG_TYPE_KPROBE, b"gotel_probe", b"GPL", _MOV_R0_0_EXIT, 2, ctypes.byref(opts)
    )
    if prog < 0:
        log.debug("uprobe_multi: probe program refused: %s", os.strerror(-prog))
        return False
    try:
        os.close(create(prog, "/nonexistent/gotel-uprobe-multi-probe", [0], 0))
    except FileNotFoundError:
        return True
    except AttachError as exc:
        log.debug("uprobe_multi: %s", exc)
        return False
    finally:
        os.close(prog)
    return False  # nothing exists at that path: a link there means a kernel gone odd


class FdLink:
    """A link known by its fd (not a libbpf `struct bpf_link`); closing it detaches."""

    def __init__(self, fd: int, description: str) -> None:
        self._fd: int | None = fd
        self.description = description

    @property
    def active(self) -> bool:
        return self._fd is not None

    def fileno(self) -> int:
        if self._fd is None:
            raise GotelError(f"link {self.description}: destroyed")
        return self._fd

    def destroy(self) -> None:
        """Detach. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FdLink({self.description!r}{'' if self.active else ', destroyed'})"
