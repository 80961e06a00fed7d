"""Insert traceparent into a process's outgoing requests at the socket layer: a header line
in HTTP/1 requests, a header field in the HEADERS frames of cleartext HTTP/2 (gRPC).

The BPF side is inject.bpf.c. This class loads it for one process, attaches its sockops
program to the process's cgroup v2 and its sk_msg program to the socket map, adds the
process's already established client sockets, and takes all of it away again. More target
processes of the same cgroup join it (add_target) rather than loading a pair of their own.
The ids come from the `shared_outgoing` map (HTTP/1, by goroutine) and the
`shared_outgoing_streams` map (HTTP/2, by goroutine and stream id), which uprobes on the
process's send path fill; this module knows nothing of what they mean.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from gotel.ebpf import BpfObject, Link, MapAttachment, features
from gotel.ebpf.cgroup import cgroup2_dir
from gotel.ebpf.pidfd import PidFd
from gotel.errors import GotelError, MissingPrivilegeError, NotSupportedError
from gotel.instrumentation.sockinject.sockets import established_client_sockets, socket_cookie
from gotel.target.process import agent_pid_namespace

log = logging.getLogger(__name__)

OBJECT = Path(__file__).with_name("inject.bpf.o")
OUTGOING_MAP = "shared_outgoing"
STREAMS_MAP = "shared_outgoing_streams"
SOCKETS_MAP = "sockets"
TARGETS_MAP = "target_tgids"
REASONS_MAP = "inject_reasons"
REASON_ENUM = "inject_reason"
REASON_PREFIX = "INJECT_"
REASON_SENTINEL = "INJECT_REASON_COUNT"

# (what, since which Linux): checked before loading, for a one-line error.
_REQUIRED = (
    ("program type", "sock_ops", "4.13"),
    ("program type", "sk_msg", "4.17"),
    ("map type", "sockhash", "4.18"),
    ("map type", "sk_storage", "5.2"),
    ("helper", "msg_push_data", "4.20"),
    ("helper", "get_current_task_btf", "5.11"),
    ("helper", "loop", "5.17"),
    ("helper", "sk_storage_get", "5.2"),
)


class SocketInjector:
    """Traceparent insertion for one process. attach(), then close() (idempotent).

    `shared_outgoing_fd`: the fd of a `shared_outgoing` map other objects already use (the
    uprobes that fill it); `shared_maps`: name -> fd of such maps, `shared_outgoing_streams`
    among them. A map not given is created, and outgoing_map_fd() / streams_map_fd() are
    what those objects should reuse.
    """

    def __init__(
        self,
        pid: int,
        shared_outgoing_fd: int | None = None,
        *,
        shared_maps: Mapping[str, int] | None = None,
        g_tls_offset: int | None = None,
        max_context_age_ns: int = 5_000_000_000,
        bpf_object: str | os.PathLike[str] = OBJECT,
    ) -> None:
        self.pid = pid
        self._shared = {
            name: fd
            for name, fd in (shared_maps or {}).items()
            if name in (OUTGOING_MAP, STREAMS_MAP)
        }
        if shared_outgoing_fd is not None:
            self._shared[OUTGOING_MAP] = shared_outgoing_fd
        # g's TLS slot: include/go_abi.h's GO_G_TLS_OFFSET unless the caller knows better.
        self._constants = {"max_context_age_ns": max_context_age_ns, **agent_pid_namespace()}
        if g_tls_offset is not None:
            self._constants["g_tls_offset"] = g_tls_offset
        self._path = Path(bpf_object)
        self._obj: BpfObject | None = None
        self._sockops: Link | None = None
        self._sk_msg: MapAttachment | None = None
        self._final: dict[str, int] = {}
        self.targets = {pid}
        self.existing_sockets = 0  # how many sockets attach() found already open

    # -- public -------------------------------------------------------------------------

    def attach(self) -> None:
        """Start inserting: new connections through the cgroup's sockops program, open ones
        by borrowing their fds. Raises a GotelError subclass with one line on failure."""
        if self._sockops is not None:
            return
        cgroup = cgroup2_dir(self.pid)
        obj = self._load()
        try:
            # sk_msg first: a socket takes the map's programs when it enters the map.
            self._sk_msg = obj.attach_sk_msg("inject_traceparent", SOCKETS_MAP)
            self._sockops = obj.attach_cgroup("track_sockets", cgroup)
            self.existing_sockets = self.add_open_sockets()
        except BaseException:
            self.close()
            raise
        log.info(
            "pid %d: traceparent injection attached (cgroup %s, %d open connections added)",
            self.pid,
            cgroup,
            self.existing_sockets,
        )

    def add_open_sockets(self, pid: int | None = None) -> int:
        """Put the established client TCP sockets of `pid` (default: the target) into the
        socket map; returns how many. attach() does it once for the target; call it again
        for connections that were still being set up then. Sockets of another process are
        accepted but their messages pass untouched. One that closes meanwhile is skipped."""
        obj = self._load()
        pid = self.pid if pid is None else pid
        found = established_client_sockets(pid)
        if not found:
            return 0
        added = 0
        try:
            pidfd = PidFd(pid)
        except GotelError as exc:
            log.warning("pid %d: open connections not covered: %s", pid, exc)
            return 0
        with pidfd:
            for sock in found:
                try:
                    dup = pidfd.getfd(sock.fd)
                except MissingPrivilegeError as exc:
                    log.warning("pid %d: open connections not covered: %s", pid, exc)
                    return added
                except OSError as exc:  # closed meanwhile
                    log.debug("pid %d fd %d: skipped: %s", pid, sock.fd, exc)
                    continue
                try:
                    if os.fstat(dup).st_ino != sock.inode:  # the fd was reused meanwhile
                        continue
                    key = socket_cookie(dup).to_bytes(8, "little")
                    obj.update_map_fd_value(SOCKETS_MAP, key, dup)
                    added += 1
                except (GotelError, OSError) as exc:  # e.g. no longer established
                    log.debug("pid %d fd %d: skipped: %s", pid, sock.fd, exc)
                finally:
                    os.close(dup)
        return added

    def add_target(self, pid: int) -> int:
        """Insert into the requests of another process of the same cgroup too; returns how
        many of its open connections were added."""
        obj = self._load()
        obj.update(TARGETS_MAP, pid.to_bytes(4, "little"), b"\x01")
        self.targets.add(pid)
        return self.add_open_sockets(pid)

    def remove_target(self, pid: int) -> None:
        """Leave that process's messages alone from now on (its sockets stay in the map
        until they close, passing untouched)."""
        obj = self._obj
        self.targets.discard(pid)
        if obj is not None:
            key = pid.to_bytes(4, "little")
            obj.delete(TARGETS_MAP, key)
            # Its counts go too: a later process given its pid must start from zero, and the
            # map must keep room for the targets to come.
            for reason in obj.keys(REASONS_MAP):
                if reason.startswith(key):
                    obj.delete(REASONS_MAP, reason)

    def outgoing_map_fd(self) -> int:
        """The fd of the `shared_outgoing` map (loads the object if needed)."""
        return self._load().map_fd(OUTGOING_MAP)

    def streams_map_fd(self) -> int:
        """The fd of the `shared_outgoing_streams` map (loads the object if needed)."""
        return self._load().map_fd(STREAMS_MAP)

    def reasons(self, pid: int | None = None) -> dict[str, int]:
        """Outcomes so far, of one sending process or of all: per HTTP/1 message injected,
        no_context, not_http1, tls, ...; per HTTP/2 HEADERS frame h2_injected,
        h2_no_context, h2_continuation, ...; per HTTP/2 connection h2_connection, h2_desync
        (after close(), the final counts of all)."""
        obj = self._obj
        if obj is None:
            return dict(self._final)
        names = {value: name.removeprefix(REASON_PREFIX).lower()
                 for name, value in obj.enum_values(REASON_ENUM).items()
                 if name != REASON_SENTINEL}
        counts = dict.fromkeys(names.values(), 0)
        for key in obj.keys(REASONS_MAP):  # struct reason_key: pid, reason
            sender, reason = int.from_bytes(key[:4], "little"), int.from_bytes(key[4:], "little")
            if reason in names and (pid is None or sender == pid):
                counts[names[reason]] += obj.percpu_sum(REASONS_MAP, int.from_bytes(key, "little"))
        return counts

    def program_ids(self) -> list[int]:
        """Kernel ids of the loaded programs (to check that none is left after close())."""
        obj = self._obj
        return [obj.program_id(name) for name in obj.program_names()] if obj else []

    def close(self) -> None:
        """Detach everything: no new sockets, no program on any socket. Idempotent."""
        obj = self._obj
        if obj is None:
            return
        try:
            self._final = self.reasons()
        except GotelError:  # not loaded: nothing counted
            self._final = {}
        for attachment in (self._sockops, self._sk_msg):
            if attachment is not None:
                attachment.destroy()
        self._sockops = self._sk_msg = None
        # Each socket in the map carries its own reference to the sk_msg program and
        # sends through the sockmap path until it leaves the map: empty the map now
        # rather than whenever the kernel frees it.
        try:
            for key in obj.keys(SOCKETS_MAP):
                obj.delete(SOCKETS_MAP, key)
        except GotelError as exc:  # freeing the map removes them too
            log.warning("pid %d: emptying the socket map failed: %s", self.pid, exc)
        self._obj = None
        obj.close()
        log.debug("pid %d: traceparent injection detached", self.pid)

    def __enter__(self) -> SocketInjector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------

    def _load(self) -> BpfObject:
        if self._obj is not None:
            return self._obj
        check_kernel()
        obj = BpfObject(self._path)
        try:
            obj.set_constants(self._constants)
            for name, fd in self._shared.items():
                obj.reuse_map(name, fd)
            obj.load()
            for pid in self.targets:
                obj.update(TARGETS_MAP, pid.to_bytes(4, "little"), b"\x01")
        except BaseException:
            obj.close()
            raise
        self._obj = obj
        return obj


# In a pid namespace of its own (a sidecar's), the programs tell targets by the pid gotel
# sees, which sock_ops and sk_msg programs may ask for only since Linux 6.10.
_IN_PID_NAMESPACE = (("sock_ops", "get_ns_current_pid_tgid", "6.10"),
                     ("sk_msg", "get_ns_current_pid_tgid", "6.10"))


def check_kernel() -> None:
    """Raise NotSupportedError naming the first kernel feature injection lacks."""
    for what, name, since in _REQUIRED:
        if what == "program type":
            ok = features.prog_type_supported(name)
        elif what == "map type":
            ok = features.map_type_supported(name)
        else:
            ok = features.helper_supported("sk_msg", name)
        if not ok:
            raise NotSupportedError(
                f"traceparent injection: the kernel lacks the {what} {name} (Linux >= {since})"
            )
    if agent_pid_namespace():
        for prog_type, helper, since in _IN_PID_NAMESPACE:
            if not features.helper_supported(prog_type, helper):
                raise NotSupportedError(
                    f"traceparent injection: in a pid namespace of its own gotel needs the "
                    f"helper {helper} in {prog_type} programs (Linux >= {since})"
                )
