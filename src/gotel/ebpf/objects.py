"""A compiled BPF object (.bpf.o) through its life: open, configure, load, attach, read.

BpfObject owns everything it creates (the libbpf object with its program and map fds,
links, ring buffer mappings) and releases all of it in close().
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from gotel.ebpf import attachments, libbpf, uprobe_multi
from gotel.ebpf.attachments import MapAttachment
from gotel.ebpf.btf import (
    KIND_DATASEC,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_STRUCT,
    Btf,
    Field,
    StructLayout,
    UnknownNameError,
)
from gotel.ebpf.maps import MapAccess
from gotel.ebpf.ringbuf import RingBuffer
from gotel.ebpf.uprobe_multi import FdLink
from gotel.errors import AttachError, BpfLoadError, GotelError, MissingPrivilegeError

log = logging.getLogger(__name__)

VERIFIER_TAIL_LINES = 20
_PRIVILEGE_HINT = "run as root, or grant CAP_BPF and CAP_PERFMON"
_INT_KINDS = frozenset({"int", "uint", "enum", "bool", "ptr"})


class Link:
    """One attachment (a `struct bpf_link *`); destroying it detaches the probe."""

    def __init__(self, ptr: int, description: str) -> None:
        self._ptr: int | None = ptr
        self.description = description

    @property
    def active(self) -> bool:
        return self._ptr is not None

    def fileno(self) -> int:
        if self._ptr is None:
            raise GotelError(f"link {self.description}: destroyed")
        return libbpf.lib().bpf_link__fd(self._ptr)

    def destroy(self) -> None:
        """Detach and free. Idempotent."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            err = libbpf.lib().bpf_link__destroy(ptr)
            if err < 0:  # the link memory is freed regardless; nothing to retry
                log.warning("link %s: destroy failed: %s", self.description, libbpf.strerror(err))

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return f"Link({self.description!r}{'' if self.active else ', destroyed'})"


_L = TypeVar("_L", Link, FdLink)


class BpfObject(MapAccess):
    """A BPF ELF object opened with libbpf. Use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._obj: int | None = None
        self._loaded = False
        self._links: list[Link | FdLink] = []
        self._rings: list[RingBuffer] = []
        self._map_attachments: list[MapAttachment] = []
        self._layouts: dict[str, StructLayout] = {}
        self._constants: dict[str, tuple[str, Field]] | None = None
        lib = libbpf.lib()
        with libbpf.capture_messages() as messages:
            ptr, err = libbpf.check_ptr(lib.bpf_object__open_file(os.fsencode(self.path), None))
        if not ptr:
            detail = _last_warning(messages)
            raise BpfLoadError(
                f"bpf object {self.path}: open failed: {libbpf.strerror(err)}"
                + (f" ({detail})" if detail else "")
            )
        self._obj = ptr
        self.name = lib.bpf_object__name(ptr).decode()
        btf_ptr = lib.bpf_object__btf(ptr)
        self._btf = Btf(btf_ptr) if btf_ptr else None

    # -- before load --------------------------------------------------------------------

    def set_constants(self, values: Mapping[str, int | bytes | str]) -> None:
        """Set `volatile const` globals (.rodata) by name; must happen before load(). An
        enum-typed one may be given its enumerator's name."""
        obj = self._require_open()
        if self._loaded:
            raise GotelError(f"bpf object {self.name}: constants must be set before load()")
        known = self._rodata_vars()
        images: dict[str, bytearray] = {}
        for name, value in values.items():
            if name not in known:
                raise UnknownNameError(
                    f"bpf object {self.name}: no constant {name!r} "
                    f"(known: {', '.join(sorted(known)) or 'none'})"
                )
            section, var = known[name]
            if section not in images:
                images[section] = bytearray(self._initial_value(section))
            images[section][var.offset : var.offset + var.size] = _pack_constant(var, value)
        lib = libbpf.lib()
        for section, image in images.items():
            map_ptr = lib.bpf_object__find_map_by_name(obj, section.encode())
            buf = (ctypes.c_char * len(image)).from_buffer(image)
            err = lib.bpf_map__set_initial_value(map_ptr, buf, len(image))
            if err < 0:
                raise GotelError(
                    f"bpf object {self.name}: setting {section} failed: {libbpf.strerror(err)}"
                )
        log.debug("bpf object %s: constants %s", self.name, dict(values))

    def set_max_entries(self, map_name: str, max_entries: int) -> None:
        """Resize a map before load (e.g. a ring buffer: a power-of-2 multiple of the page)."""
        if self._loaded:
            raise GotelError(f"bpf object {self.name}: maps must be resized before load()")
        err = libbpf.lib().bpf_map__set_max_entries(self._map(map_name), max_entries)
        if err < 0:
            raise GotelError(
                f"map {map_name}: cannot set max_entries={max_entries}: {libbpf.strerror(err)}"
            )

    def key_size(self, map_name: str) -> int:
        return int(libbpf.lib().bpf_map__key_size(self._map(map_name)))

    def max_entries(self, map_name: str) -> int:
        return int(libbpf.lib().bpf_map__max_entries(self._map(map_name)))

    def reuse_map(self, map_name: str, fd: int) -> None:
        """Before load: use an existing map (from another object) instead of creating one,
        so that several objects share its state."""
        if self._loaded:
            raise GotelError(f"bpf object {self.name}: maps must be shared before load()")
        err = libbpf.lib().bpf_map__reuse_fd(self._map(map_name), fd)
        if err < 0:
            raise GotelError(f"map {map_name}: cannot reuse fd {fd}: {libbpf.strerror(err)}")

    def load(self) -> None:
        """Create maps, load and verify programs. On failure the verifier log's tail is in
        the error; the object should then be closed."""
        obj = self._require_open()
        if self._loaded:
            return
        with libbpf.capture_messages() as messages:
            err = libbpf.lib().bpf_object__load(obj)
        if err < 0:
            first = f"bpf object {self.name}: load failed: {libbpf.strerror(err)}"
            tail = _verifier_tail(messages)
            if -err == errno.EPERM:
                raise MissingPrivilegeError(f"{first} ({_PRIVILEGE_HINT})" + tail)
            raise BpfLoadError(first + tail)
        libbpf.replay_warnings(messages)
        self._loaded = True
        log.debug("bpf object %s: loaded programs %s", self.name, self.program_names())

    # -- after load ---------------------------------------------------------------------

    def attach_uprobe(
        self,
        program: str,
        binary: str | os.PathLike[str],
        offset: int,
        pid: int = -1,
        *,
        cookie: int = 0,
    ) -> Link:
        """Attach `program` as an entry uprobe at a file offset of `binary`.

        pid -1 probes every process mapping the binary, a pid only that process.
        `cookie` is what the program reads with bpf_get_attach_cookie().
        """
        obj = self._require_loaded()
        lib = libbpf.lib()
        prog = lib.bpf_object__find_program_by_name(obj, program.encode())
        if not prog:
            raise UnknownNameError(
                f"bpf object {self.name}: no program {program!r} "
                f"(known: {', '.join(self.program_names())})"
            )
        path = os.path.abspath(os.fspath(binary))  # libbpf would search PATH for a bare name
        where = f"uprobe {program} at {path}+0x{offset:x} pid {pid}"
        if offset < 0:
            raise AttachError(f"{where}: negative file offset")
        opts = libbpf.BpfUprobeOpts(
            sz=ctypes.sizeof(libbpf.BpfUprobeOpts), bpf_cookie=cookie, retprobe=False
        )
        with libbpf.capture_messages() as messages:
            ptr, err = libbpf.check_ptr(
                lib.bpf_program__attach_uprobe_opts(
                    prog, pid, os.fsencode(path), offset, ctypes.byref(opts)
                )
            )
        if not ptr:
            hint = f" ({_PRIVILEGE_HINT})" if err in (errno.EPERM, errno.EACCES) else ""
            raise AttachError(f"{where}: {libbpf.strerror(err)}{hint}")
        libbpf.replay_warnings(messages)
        return self._keep(Link(ptr, where), where)

    def use_uprobe_multi(self, program: str) -> None:
        """Before load: `program` will attach through uprobe_multi links (one link for many
        offsets; see uprobe_multi.py) instead of single uprobes."""
        if self._loaded:
            raise GotelError(f"bpf object {self.name}: attach types must be set before load()")
        prog = libbpf.lib().bpf_object__find_program_by_name(
            self._require_open(), program.encode()
        )
        if not prog:
            raise UnknownNameError(f"bpf object {self.name}: no program {program!r}")
        err = libbpf.lib().bpf_program__set_expected_attach_type(
            prog, uprobe_multi.BPF_TRACE_UPROBE_MULTI
        )
        if err < 0:
            raise GotelError(f"program {program}: cannot use uprobe_multi: {libbpf.strerror(err)}")

    def attach_uprobe_multi(
        self, program: str, binary: str | os.PathLike[str], offsets: list[int], pid: int = -1
    ) -> FdLink:
        """Attach `program` (see use_uprobe_multi) at several file offsets of `binary` as one
        link; pid -1 probes every process mapping the binary, a pid only that process."""
        self._require_loaded()
        path = os.path.abspath(os.fspath(binary))
        where = f"uprobe_multi {program} at {path} ({len(offsets)} offsets) pid {pid}"
        prog_fd = libbpf.lib().bpf_program__fd(self._program(program))
        try:
            fd = uprobe_multi.create(prog_fd, path, offsets, pid)
        except FileNotFoundError as exc:
            raise AttachError(f"{where}: no such file") from exc
        except AttachError as exc:
            hint = f" ({_PRIVILEGE_HINT})" if "not permitted" in str(exc) else ""
            raise AttachError(f"{exc}{hint}") from exc
        return self._keep(FdLink(fd, where), where)

    def _keep(self, link: _L, where: str) -> _L:
        """Track a new link (close() destroys those still active)."""
        self._links = [kept for kept in self._links if kept.active]
        self._links.append(link)
        log.debug("attached %s", where)
        return link

    def attach_by_section(self, program: str) -> Link:
        """Attach a program where its SEC() name says: a tracepoint (`tp_btf/NAME`,
        `raw_tp/NAME`), which needs no kprobes and no tracefs."""
        prog = self._program(program)
        where = f"{program} ({self.name})"
        with libbpf.capture_messages() as messages:
            ptr, err = libbpf.check_ptr(libbpf.lib().bpf_program__attach(prog))
        if not ptr:
            hint = f" ({_PRIVILEGE_HINT})" if err in (errno.EPERM, errno.EACCES) else ""
            detail = _last_warning(messages)
            raise AttachError(
                f"{where}: {libbpf.strerror(err)}" + (f" ({detail})" if detail else "") + hint
            )
        libbpf.replay_warnings(messages)
        return self._keep(Link(ptr, where), where)

    def program_names(self) -> list[str]:
        obj = self._require_open()
        lib = libbpf.lib()
        names = []
        prog = lib.bpf_object__next_program(obj, None)
        while prog:
            names.append(lib.bpf_program__name(prog).decode())
            prog = lib.bpf_object__next_program(obj, prog)
        return names

    def map_names(self) -> list[str]:
        obj = self._require_open()
        lib = libbpf.lib()
        names = []
        map_ptr = lib.bpf_object__next_map(obj, None)
        while map_ptr:
            names.append(lib.bpf_map__name(map_ptr).decode())
            map_ptr = lib.bpf_object__next_map(obj, map_ptr)
        return names

    def map_fd(self, name: str) -> int:
        self._require_loaded()
        return libbpf.lib().bpf_map__fd(self._map(name))

    def map_key_fields(self, name: str) -> dict[str, Field]:
        """The members of a map's key struct by name (offsets included), from BTF; empty
        when the key is not a struct."""
        btf = self._require_btf()
        type_id = libbpf.lib().bpf_map__btf_key_type_id(self._map(name))
        if not type_id:
            return {}
        t = btf.strip(type_id)
        return dict(btf.layout(t).fields) if t.kind == KIND_STRUCT else {}

    def struct_layout(self, name: str) -> StructLayout:
        """The layout of `struct name` from the object's BTF (cached)."""
        if name not in self._layouts:
            btf = self._require_btf()
            t = btf.find(name, KIND_STRUCT)
            if t is None:
                raise UnknownNameError(
                    f"bpf object {self.name}: no struct {name!r} in BTF "
                    f"(known: {', '.join(btf.names_of_kind(KIND_STRUCT))}; a struct used only "
                    "as a local is not in BTF: type a map value with it)"
                )
            self._layouts[name] = btf.layout(t)
        return self._layouts[name]

    def enum_values(self, name: str) -> dict[str, int]:
        btf = self._require_btf()
        t = btf.find(name, KIND_ENUM, KIND_ENUM64)
        if t is None:
            raise UnknownNameError(
                f"bpf object {self.name}: no enum {name!r} in BTF "
                f"(known: {', '.join(btf.names_of_kind(KIND_ENUM, KIND_ENUM64))}; an enum is "
                "in BTF only if a struct field or variable has its type)"
            )
        return btf.enum_values(t)

    def ring_buffer(self, map_name: str) -> RingBuffer:
        """A reader of a BPF_MAP_TYPE_RINGBUF map, closed with this object."""
        self._require_loaded()
        lib = libbpf.lib()
        map_ptr = self._map(map_name)
        if lib.bpf_map__type(map_ptr) != libbpf.BPF_MAP_TYPE_RINGBUF:
            raise GotelError(f"map {map_name}: not a ring buffer")
        ring = RingBuffer(lib.bpf_map__fd(map_ptr), lib.bpf_map__max_entries(map_ptr), map_name)
        self._rings = [kept for kept in self._rings if not kept.closed]
        self._rings.append(ring)
        return ring

    # -- cgroups, socket maps -----------------------------------------------------------

    def attach_cgroup(self, program: str, cgroup_path: str | os.PathLike[str]) -> Link:
        """Attach a cgroup program (sockops, cgroup_skb, ...) to a cgroup v2 directory: it
        then runs for the processes of that cgroup and of its descendants."""
        where = f"{program} on cgroup {os.fspath(cgroup_path)}"
        ptr = attachments.attach_cgroup(self._program(program), cgroup_path, where)
        return self._keep(Link(ptr, where), where)

    def attach_sk_msg(self, program: str, map_name: str) -> MapAttachment:
        """Attach an sk_msg program to a sockmap/sockhash: it runs on every send of the
        sockets that enter the map from now on."""
        prog = self._program(program)
        map_ptr = self._map(map_name)
        if libbpf.lib().bpf_map__type(map_ptr) not in libbpf.SOCKET_MAP_TYPES:
            raise GotelError(f"map {map_name}: not a sockmap or sockhash")
        attachment = MapAttachment(
            libbpf.lib().bpf_program__fd(prog),
            libbpf.lib().bpf_map__fd(map_ptr),
            libbpf.BPF_SK_MSG_VERDICT,
            f"sk_msg {program} on map {map_name}",
        )
        self._map_attachments = [kept for kept in self._map_attachments if kept.active]
        self._map_attachments.append(attachment)
        return attachment

    def program_id(self, program: str) -> int:
        """The kernel's id of a loaded program (`bpftool prog show id ID`)."""
        return attachments.program_id(libbpf.lib().bpf_program__fd(self._program(program)))

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Unmap ring buffers, destroy links, close the object. Idempotent."""
        for ring in self._rings:
            ring.close()
        self._rings.clear()
        for attachment in self._map_attachments:
            attachment.destroy()
        self._map_attachments.clear()
        destroy_links(self._links)
        self._links.clear()
        obj, self._obj = self._obj, None
        if obj is not None:
            libbpf.lib().bpf_object__close(obj)
            self._btf = None
            self._constants = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A safety net only: owners are expected to close() explicitly.
        if getattr(self, "_obj", None) is not None:
            try:
                self.close()
            except Exception:  # interpreter shutdown may have torn down what close() uses
                pass

    def __repr__(self) -> str:
        state = "closed" if self._obj is None else ("loaded" if self._loaded else "open")
        return f"BpfObject({self.path!r}, {state})"

    # -- helpers ------------------------------------------------------------------------

    def _require_open(self) -> int:
        if self._obj is None:
            raise GotelError(f"bpf object {self.path}: closed")
        return self._obj

    def _require_loaded(self) -> int:
        obj = self._require_open()
        if not self._loaded:
            raise GotelError(f"bpf object {self.name}: not loaded (call load() first)")
        return obj

    def _require_btf(self) -> Btf:
        self._require_open()
        if self._btf is None:
            raise GotelError(f"bpf object {self.path}: no BTF (compile with clang -g)")
        return self._btf

    def _program(self, name: str) -> int:
        prog = libbpf.lib().bpf_object__find_program_by_name(
            self._require_loaded(), name.encode()
        )
        if not prog:
            raise UnknownNameError(
                f"bpf object {self.name}: no program {name!r} "
                f"(known: {', '.join(self.program_names())})"
            )
        return prog

    def _map(self, name: str) -> int:
        map_ptr = libbpf.lib().bpf_object__find_map_by_name(self._require_open(), name.encode())
        if not map_ptr:
            raise UnknownNameError(
                f"bpf object {self.name}: no map {name!r} (known: {', '.join(self.map_names())})"
            )
        return map_ptr

    def _rodata_vars(self) -> dict[str, tuple[str, Field]]:
        """name -> (section, variable) for every read-only global of the object."""
        if self._constants is None:
            btf = self._require_btf()
            found: dict[str, tuple[str, Field]] = {}
            for section in btf.names_of_kind(KIND_DATASEC):
                if section != ".rodata" and not section.startswith(".rodata."):
                    continue
                t = btf.find(section, KIND_DATASEC)
                if t is None or not libbpf.lib().bpf_object__find_map_by_name(
                    self._require_open(), section.encode()
                ):
                    continue  # e.g. .rodata.str1.1: literals, no variables, no map
                for name, var in btf.datasec_vars(t).items():
                    found[name] = (section, var)
            self._constants = found
        return self._constants

    def _initial_value(self, section: str) -> bytes:
        lib = libbpf.lib()
        map_ptr = lib.bpf_object__find_map_by_name(self._require_open(), section.encode())
        size = ctypes.c_size_t(0)
        addr = lib.bpf_map__initial_value(map_ptr, ctypes.byref(size))
        if not addr:
            raise GotelError(f"bpf object {self.name}: {section} has no initial value")
        return ctypes.string_at(addr, size.value)


def _pack_constant(var: Field, value: int | bytes | str) -> bytes:
    if isinstance(value, str):
        # An enum-typed constant set by enumerator name: its number comes from the object's
        # BTF, so no Python table copies the C enum.
        named = dict(var.enumerators)
        if var.kind != "enum" or value not in named:
            known = ", ".join(named) or f"none: {var.name} is a {var.kind}"
            raise GotelError(f"constant {var.name}: no enumerator {value!r} (known: {known})")
        value = named[value]
    if isinstance(value, bytes | bytearray):
        if len(value) > var.size:
            raise GotelError(
                f"constant {var.name}: {len(value)} bytes do not fit its {var.size} bytes"
            )
        return bytes(value).ljust(var.size, b"\0")
    if isinstance(value, int):
        if var.kind not in _INT_KINDS or var.size not in (1, 2, 4, 8):
            raise GotelError(
                f"constant {var.name}: is a {var.size}-byte {var.kind}, give bytes, not an int"
            )
        try:
            return value.to_bytes(var.size, "little", signed=var.signed)
        except OverflowError:
            bits = var.size * 8
            low, high = (
                (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if var.signed else (0, (1 << bits) - 1)
            )
            raise GotelError(
                f"constant {var.name}: {value} out of range [{low}, {high}] for a {var.kind}{bits}"
            ) from None
    raise GotelError(f"constant {var.name}: value must be int or bytes, not {type(value).__name__}")


def _last_warning(messages: list[tuple[int, str]]) -> str:
    warnings = [text for level, text in messages if level == libbpf.LIBBPF_WARN]
    return warnings[-1].removeprefix("libbpf: ").strip() if warnings else ""


def _verifier_tail(messages: list[tuple[int, str]]) -> str:
    """The last lines of the verifier log libbpf printed, or of its own warnings."""
    text = "\n".join(text for _level, text in messages)
    begin, end = "-- BEGIN PROG LOAD LOG --", "-- END PROG LOAD LOG --"
    start = text.rfind(begin)
    if start >= 0:
        prog_line = text[:start].rsplit("\n", 1)[-1]
        stop = text.find(end, start)
        body = text[start + len(begin) : stop if stop >= 0 else None]
        lines = [line for line in body.splitlines() if line.strip()]
        header = f"\n{prog_line.removeprefix('libbpf: ').strip()} verifier log (last lines):"
    else:
        lines = [t.removeprefix("libbpf: ") for level, t in messages if level == libbpf.LIBBPF_WARN]
        header = "\nlibbpf said:"
    if not lines:
        return ""
    return header + "".join(f"\n  {line}" for line in lines[-VERIFIER_TAIL_LINES:])


def destroy_links(links: Sequence[Link | FdLink]) -> None:
    """Destroy links concurrently: each uprobe unregistration waits for an RCU grace
    period (~150 ms here), and ctypes releases the GIL while it does."""
    if len(links) <= 1:
        for link in links:
            link.destroy()
        return
    with ThreadPoolExecutor(max_workers=min(32, len(links))) as pool:
        list(pool.map(lambda link: link.destroy(), links))
