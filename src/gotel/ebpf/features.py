"""Does this kernel support a BPF program type, map type or helper? Asked through libbpf's
probes (each loads a tiny program or creates a tiny map), for `gotel doctor`.

Names are the kernel's without their prefix, any case: "ringbuf", "sk_msg",
"probe_write_user" (or "BPF_MAP_TYPE_RINGBUF", "bpf_probe_write_user").
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from gotel.ebpf import libbpf
from gotel.ebpf.btf import UnknownNameError
from gotel.errors import GotelError, MissingPrivilegeError

# Values of the uapi enums (linux/bpf.h); stable ABI, checked against the header by tests.
PROG_TYPES = {
    "kprobe": 2,  # also uprobes
    "tracepoint": 5,
    "perf_event": 7,
    "cgroup_skb": 8,
    "sock_ops": 13,
    "sk_msg": 16,
}
MAP_TYPES = {
    "hash": 1,
    "array": 2,
    "perf_event_array": 4,
    "percpu_hash": 5,
    "percpu_array": 6,
    "lru_hash": 9,
    "lru_percpu_hash": 10,
    "sockhash": 18,
    "sk_storage": 24,
    "ringbuf": 27,
}
HELPERS = {
    "get_prandom_u32": 7,
    "get_current_pid_tgid": 14,
    "get_current_task": 35,
    "get_socket_cookie": 46,
    "probe_write_user": 36,
    "msg_pull_data": 63,
    "sock_hash_update": 70,
    "msg_redirect_hash": 71,
    "msg_push_data": 90,
    "msg_pop_data": 91,
    "sk_storage_get": 107,
    "probe_read_user": 112,
    "probe_read_kernel": 113,
    "get_ns_current_pid_tgid": 120,
    "ktime_get_boot_ns": 125,
    "ringbuf_output": 130,
    "ringbuf_reserve": 131,
    "skc_to_tcp_sock": 137,
    "get_current_task_btf": 158,
    "get_attach_cookie": 174,
    "task_pt_regs": 175,
    "loop": 181,
}


def _lookup(table: dict[str, int], what: str, name: str, *prefixes: str) -> int:
    key = name.lower()
    for prefix in prefixes:
        key = key.removeprefix(prefix)
    if key not in table:
        raise UnknownNameError(f"bpf {what} {name!r}: unknown (known: {', '.join(table)})")
    return table[key]


def _answer(what: str, ret: int) -> bool:
    if ret < 0:
        if -ret == errno.EPERM:
            raise MissingPrivilegeError(
                f"probing {what}: {libbpf.strerror(ret)} (run as root, or grant CAP_BPF)"
            )
        raise GotelError(f"probing {what}: {libbpf.strerror(ret)}")
    return ret == 1


# Program types the kernel loads only for CAP_NET_ADMIN (or CAP_SYS_ADMIN): without it a
# probe would read as "not supported".
NET_ADMIN_PROG_TYPES = frozenset({"cgroup_skb", "sock_ops", "sk_msg"})


def prog_type_supported(name: str) -> bool:
    prog_type = _lookup(PROG_TYPES, "program type", name, "bpf_prog_type_")
    if name.lower().removeprefix("bpf_prog_type_") in NET_ADMIN_PROG_TYPES:
        from gotel.privileges import CAP_NET_ADMIN, CAP_SYS_ADMIN, has, lacking

        if not has(CAP_SYS_ADMIN) and (refused := lacking(CAP_NET_ADMIN, f"program type {name}")):
            raise refused
    return _answer(f"program type {name}", libbpf.lib().libbpf_probe_bpf_prog_type(prog_type, None))


def map_type_supported(name: str) -> bool:
    map_type = _lookup(MAP_TYPES, "map type", name, "bpf_map_type_")
    return _answer(f"map type {name}", libbpf.lib().libbpf_probe_bpf_map_type(map_type, None))


# Verifier messages meaning "this helper is not available to this program type". libbpf
# 1.1's libbpf_probe_bpf_helper() knows only the first two, so on kernels that say
# "cannot use helper" (e.g. bpf_probe_write_user under lockdown) it answers "supported".
_HELPER_UNAVAILABLE = (b"invalid func ", b"unknown func ", b"cannot use helper")
_INSN = struct.Struct("<BBhi")  # struct bpf_insn: code, dst/src regs, off, imm
_CALL, _EXIT = 0x85, 0x95  # BPF_JMP | BPF_CALL, BPF_JMP | BPF_EXIT


def helper_supported(prog_type_name: str, helper: str) -> bool:
    """Whether programs of `prog_type_name` may call `helper` (lockdown can forbid some).

    Loads `call helper; exit`: a verifier complaint about the call's arguments still
    means the helper exists for this program type.
    """
    prog_type = _lookup(PROG_TYPES, "program type", prog_type_name, "bpf_prog_type_")
    func = _lookup(HELPERS, "helper", helper, "bpf_func_", "bpf_")
    insns = _INSN.pack(_CALL, 0, 0, func) + _INSN.pack(_EXIT, 0, 0, 0)
    log_buf = ctypes.create_string_buffer(1 << 16)
    opts = libbpf.BpfProgLoadOpts(
        sz=ctypes.sizeof(libbpf.BpfProgLoadOpts),
        log_level=1,
        log_size=len(log_buf),
        log_buf=ctypes.addressof(log_buf),
    )
    fd = libbpf.lib().bpf_prog_load(prog_type, b"gotel_probe", b"GPL", insns, 2, ctypes.byref(opts))
    if fd >= 0:
        os.close(fd)
        return True
    if any(marker in log_buf.value for marker in _HELPER_UNAVAILABLE):
        return False
    if -fd in (errno.EACCES, errno.EINVAL):  # rejected for another reason: the helper exists
        return True
    return _answer(f"helper {helper} from {prog_type_name}", fd)
