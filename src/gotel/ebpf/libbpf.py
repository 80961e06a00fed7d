"""ctypes declarations for the part of libbpf 1.x that gotel uses, and nothing else.

The library is loaded on first use (importing gotel must work on machines without
libbpf, e.g. for `gotel inspect`). Every prototype lives here; the other modules call
`lib()` and use the helpers below to turn libbpf's error conventions into exceptions:
since libbpf 1.0, functions returning an int return -errno, and functions returning a
pointer return NULL and set errno.

libbpf's log goes through one process-wide print callback that forwards to `logging`
and, inside `capture_messages()`, also records the messages of the current thread
(how a failed load gets the verifier log into its exception).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import logging
import os
import platform
import threading
from collections.abc import Iterator
from typing import Any

from gotel.errors import NotSupportedError

log = logging.getLogger(__name__)

LIBBPF_SONAME = "libbpf.so.1"

# enum libbpf_print_level
LIBBPF_WARN = 0
LIBBPF_INFO = 1
LIBBPF_DEBUG = 2

# enum bpf_map_type values used by gotel (linux/bpf.h)
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_RINGBUF = 27
PERCPU_MAP_TYPES = frozenset(
    {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH}
)

BPF_MAP_TYPE_SOCKMAP = 15
BPF_MAP_TYPE_SOCKHASH = 18
SOCKET_MAP_TYPES = frozenset({BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH})

BPF_ANY = 0  # bpf_map_update_elem flags

# enum bpf_attach_type values used by gotel (linux/bpf.h)
BPF_SK_MSG_VERDICT = 7


class BpfUprobeOpts(ctypes.Structure):
    """struct bpf_uprobe_opts as of libbpf 1.1 (40 bytes on LP64).

    `sz` tells libbpf how much of the struct we know; newer libbpf versions accept a
    smaller struct, so declaring only the 1.1 fields stays forward compatible.
    """

    _fields_ = (
        ("sz", ctypes.c_size_t),
        ("ref_ctr_offset", ctypes.c_size_t),
        ("bpf_cookie", ctypes.c_uint64),
        ("retprobe", ctypes.c_bool),
        ("func_name", ctypes.c_char_p),
    )


class BpfProgLoadOpts(ctypes.Structure):
    """struct bpf_prog_load_opts as of libbpf 1.1 (104 bytes on LP64); same `sz` rule."""

    _fields_ = (
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        ("expected_attach_type", ctypes.c_int),
        ("prog_btf_fd", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_ifindex", ctypes.c_uint32),
        ("kern_version", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("attach_prog_fd", ctypes.c_uint32),
        ("attach_btf_obj_fd", ctypes.c_uint32),
        ("fd_array", ctypes.c_void_p),
        ("func_info", ctypes.c_void_p),
        ("func_info_cnt", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_void_p),
        ("line_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_void_p),
    )


# int (*libbpf_print_fn_t)(enum libbpf_print_level, const char *fmt, va_list ap)
# `fmt` stays a raw pointer: it must be handed back to vsnprintf untouched.
PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

# (name, restype, argtypes). Opaque libbpf objects are c_void_p.
_PROTOTYPES: tuple[tuple[str, Any, tuple[Any, ...]], ...] = (
    ("libbpf_major_version", ctypes.c_uint32, ()),
    ("libbpf_minor_version", ctypes.c_uint32, ()),
    ("libbpf_version_string", ctypes.c_char_p, ()),
    ("libbpf_set_print", ctypes.c_void_p, (PRINT_FN,)),
    ("libbpf_strerror", ctypes.c_int, (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)),
    ("libbpf_num_possible_cpus", ctypes.c_int, ()),
    ("libbpf_probe_bpf_prog_type", ctypes.c_int, (ctypes.c_int, ctypes.c_void_p)),
    ("libbpf_probe_bpf_map_type", ctypes.c_int, (ctypes.c_int, ctypes.c_void_p)),
    (
        "bpf_prog_load",
        ctypes.c_int,
        (
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
        ),
    ),
    # object
    ("bpf_object__open_file", ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_void_p)),
    ("bpf_object__load", ctypes.c_int, (ctypes.c_void_p,)),
    ("bpf_object__close", None, (ctypes.c_void_p,)),
    ("bpf_object__name", ctypes.c_char_p, (ctypes.c_void_p,)),
    ("bpf_object__btf", ctypes.c_void_p, (ctypes.c_void_p,)),
    ("bpf_object__next_program", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_void_p)),
    ("bpf_object__find_program_by_name", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_char_p)),
    ("bpf_object__next_map", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_void_p)),
    ("bpf_object__find_map_by_name", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_char_p)),
    # program and link
    ("bpf_program__name", ctypes.c_char_p, (ctypes.c_void_p,)),
    (
        "bpf_program__attach_uprobe_opts",
        ctypes.c_void_p,
        (
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.POINTER(BpfUprobeOpts),
        ),
    ),
    ("bpf_link__fd", ctypes.c_int, (ctypes.c_void_p,)),
    ("bpf_link__destroy", ctypes.c_int, (ctypes.c_void_p,)),
    ("bpf_program__fd", ctypes.c_int, (ctypes.c_void_p,)),
    ("bpf_program__set_expected_attach_type", ctypes.c_int, (ctypes.c_void_p, ctypes.c_int)),
    ("bpf_program__attach_cgroup", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_int)),
    # attach as the program's section says (tp_btf/..., raw_tp/...)
    ("bpf_program__attach", ctypes.c_void_p, (ctypes.c_void_p,)),
    # attachments without a bpf_link (sk_msg on a sockmap before Linux 6.10)
    ("bpf_prog_attach", ctypes.c_int, (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint)),
    ("bpf_prog_detach2", ctypes.c_int, (ctypes.c_int, ctypes.c_int, ctypes.c_int)),
    (
        "bpf_obj_get_info_by_fd",
        ctypes.c_int,
        (ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)),
    ),
    # map
    ("bpf_map__name", ctypes.c_char_p, (ctypes.c_void_p,)),
    ("bpf_map__fd", ctypes.c_int, (ctypes.c_void_p,)),
    ("bpf_map__type", ctypes.c_int, (ctypes.c_void_p,)),
    ("bpf_map__key_size", ctypes.c_uint32, (ctypes.c_void_p,)),
    ("bpf_map__value_size", ctypes.c_uint32, (ctypes.c_void_p,)),
    ("bpf_map__max_entries", ctypes.c_uint32, (ctypes.c_void_p,)),
    ("bpf_map__btf_key_type_id", ctypes.c_uint32, (ctypes.c_void_p,)),
    ("bpf_map__set_max_entries", ctypes.c_int, (ctypes.c_void_p, ctypes.c_uint32)),
    ("bpf_map__reuse_fd", ctypes.c_int, (ctypes.c_void_p, ctypes.c_int)),
    (
        "bpf_map__initial_value",
        ctypes.c_void_p,
        (ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)),
    ),
    (
        "bpf_map__set_initial_value",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t),
    ),
    (
        "bpf_map__lookup_elem",
        ctypes.c_int,
        (
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint64,
        ),
    ),
    (
        "bpf_map__update_elem",
        ctypes.c_int,
        (
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint64,
        ),
    ),
    (
        "bpf_map__delete_elem",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint64),
    ),
    (
        "bpf_map__get_next_key",
        ctypes.c_int,
        (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t),
    ),
    # maps by fd (maps shared between objects outlive the object that created them)
    ("bpf_map_get_next_key", ctypes.c_int, (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)),
    ("bpf_map_delete_elem", ctypes.c_int, (ctypes.c_int, ctypes.c_void_p)),
    # btf (read-only use of the object's own BTF)
    ("btf__type_cnt", ctypes.c_uint32, (ctypes.c_void_p,)),
    ("btf__type_by_id", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_uint32)),
    ("btf__name_by_offset", ctypes.c_char_p, (ctypes.c_void_p, ctypes.c_uint32)),
    ("btf__find_by_name_kind", ctypes.c_int32, (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32)),
    ("btf__resolve_size", ctypes.c_int64, (ctypes.c_void_p, ctypes.c_uint32)),
)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_libc: ctypes.CDLL | None = None
_tls = threading.local()


def lib() -> ctypes.CDLL:
    """The loaded libbpf with prototypes declared; loads it on first call."""
    global _lib, _libc
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            try:
                handle = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
            except OSError as exc:
                raise NotSupportedError(
                    f"{LIBBPF_SONAME} not found (install libbpf1): {exc}"
                ) from exc
            for name, restype, argtypes in _PROTOTYPES:
                try:
                    func = getattr(handle, name)
                except AttributeError as exc:
                    raise NotSupportedError(
                        f"{LIBBPF_SONAME} lacks {name} (libbpf >= 1.1 needed; install libbpf1)"
                    ) from exc
                func.restype = restype
                func.argtypes = argtypes
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
            _libc.vsnprintf.restype = ctypes.c_int
            _libc.vsnprintf.argtypes = (
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_void_p,
                ctypes.c_void_p,
            )
            # libbpf 1.x is strict by default: no libbpf_set_strict_mode() needed.
            handle.libbpf_set_print(_print_callback)
            _lib = handle
            log.debug("loaded %s version %s", LIBBPF_SONAME, _version_of(handle))
    return _lib


def _version_of(handle: ctypes.CDLL) -> str:
    return f"{handle.libbpf_major_version()}.{handle.libbpf_minor_version()}"


def libbpf_version() -> str:
    """libbpf's "major.minor", e.g. "1.1"; loads the library."""
    return _version_of(lib())


def strerror(err: int) -> str:
    """Message for an errno or one of libbpf's own codes (4000+), e.g. "Permission denied"."""
    err = abs(err)
    buf = ctypes.create_string_buffer(256)
    lib().libbpf_strerror(err, buf, len(buf))
    text = buf.value.decode(errors="replace")
    return text or os.strerror(err)


def check_ptr(ptr: int | None) -> tuple[int, int]:
    """(pointer, 0) for a non-NULL result, else (0, errno) read right after the call."""
    if ptr:
        return ptr, 0
    err = ctypes.get_errno() or errno_mod.EINVAL
    return 0, err


# --- libbpf's print callback -------------------------------------------------------------

# Size of one va_list on the ABIs where libbpf passes it as a pointer to a struct we can
# copy (the byte copy is what va_copy does there). It lets us ask vsnprintf for the length
# first, then format exactly: verifier logs can be megabytes.
_VA_LIST_SIZE = {"x86_64": 24, "aarch64": 32}.get(platform.machine())
_FALLBACK_BUF = 1 << 16


def _format(fmt: int, ap: int) -> str:
    assert _libc is not None
    if _VA_LIST_SIZE is None:
        buf = ctypes.create_string_buffer(_FALLBACK_BUF)
        _libc.vsnprintf(buf, len(buf), fmt, ap)
        return buf.value.decode(errors="replace")
    ap_copy = ctypes.create_string_buffer(_VA_LIST_SIZE)
    ctypes.memmove(ap_copy, ap, _VA_LIST_SIZE)
    needed = _libc.vsnprintf(None, 0, fmt, ctypes.addressof(ap_copy))
    if needed < 0:
        return "<unformattable libbpf message>"
    buf = ctypes.create_string_buffer(needed + 1)
    _libc.vsnprintf(buf, len(buf), fmt, ap)
    return buf.value.decode(errors="replace")


def _on_print(level: int, fmt: int, ap: int) -> int:
    try:
        captures: list[list[tuple[int, str]]] = getattr(_tls, "captures", [])
        wanted = bool(captures) and level <= LIBBPF_INFO
        if not wanted and not log.isEnabledFor(logging.DEBUG if level else logging.WARNING):
            return 0
        text = _format(fmt, ap).rstrip("\n")
        if wanted:
            captures[-1].append((level, text))
            # The caller decides whether this is an error; keep the log quiet meanwhile.
            log.debug("%s", text)
        elif level == LIBBPF_WARN:
            log.warning("%s", text)
        else:
            log.debug("%s", text)
    except Exception:  # a C callback must never raise
        log.exception("formatting a libbpf message failed")
    return 0


# Module-level so the callback outlives every libbpf call that may use it.
_print_callback = PRINT_FN(_on_print)


@contextlib.contextmanager
def capture_messages() -> Iterator[list[tuple[int, str]]]:
    """Record libbpf's WARN/INFO messages of this thread as (level, text) while inside."""
    captures: list[list[tuple[int, str]]] | None = getattr(_tls, "captures", None)
    if captures is None:
        captures = _tls.captures = []
    messages: list[tuple[int, str]] = []
    captures.append(messages)
    try:
        yield messages
    finally:
        captures.pop()


def replay_warnings(messages: list[tuple[int, str]]) -> None:
    """Log captured warnings normally once the caller knows they are not an error."""
    for level, text in messages:
        if level == LIBBPF_WARN:
            log.warning("%s", text)
