"""Execs on this machine as they happen, from a BPF program on the sched_process_exec
tracepoint (exec.bpf.c): the process id and the file it executes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gotel.ebpf import BpfObject, Field, RingBuffer
from gotel.target.process import agent_pid_namespace

log = logging.getLogger(__name__)

OBJECT = Path(__file__).with_name("exec.bpf.o")
PROGRAM = "on_exec"
RING = "execs"
LOST = "execs_lost"
EVENT = "exec_event"


@dataclass(frozen=True)
class Exec:
    pid: int
    filename: str  # as given to execve (may be relative); /proc/<pid>/exe is the file
    boot_ns: int  # CLOCK_BOOTTIME of the exec


class ExecEvents:
    """Reader of every exec. Raises GotelError when the program cannot load or attach
    (old kernel, no BTF, missing privileges); the caller then polls /proc instead."""

    def __init__(self, bpf_object: str | Path = OBJECT) -> None:
        self._obj = BpfObject(bpf_object)
        try:
            self._obj.set_constants(agent_pid_namespace())
            self._obj.load()
            layout = self._obj.struct_layout(EVENT)
            self._size = layout.size
            self._pid = layout.fields["pid"]
            self._boot = layout.fields["boot_ns"]
            self._name = layout.fields["filename"]
            self._name_len = layout.fields["filename_len"]
            self._ring: RingBuffer = self._obj.ring_buffer(RING)
            self._obj.attach_by_section(PROGRAM)
        except BaseException:
            self._obj.close()
            raise
        self._lost_seen = 0

    def drain(self) -> list[Exec]:
        """The execs since the last call, oldest first."""
        found = []
        for raw in self._ring.drain():
            if len(raw) < self._size:
                continue
            length = min(_uint(raw, self._name_len), self._name.size)
            name = raw[self._name.offset : self._name.offset + length]
            found.append(
                Exec(_uint(raw, self._pid), name.decode(errors="replace"), _uint(raw, self._boot))
            )
        return found

    def lost_since_last_call(self) -> int:
        """Execs the ring had no room for: the caller should scan /proc for them."""
        lost = self._obj.percpu_sum(LOST)
        new, self._lost_seen = lost - self._lost_seen, lost
        return new

    def close(self) -> None:
        self._obj.close()


def _uint(raw: bytes, field: Field) -> int:
    return int.from_bytes(raw[field.offset : field.offset + field.size], "little")
