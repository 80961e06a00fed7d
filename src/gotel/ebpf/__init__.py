"""Generic libbpf runtime: open a BPF object, set its constants, load, attach uprobes,
cgroup and socket-map programs, read maps and ring buffers. Knows nothing of Go or OpenTelemetry.

`gotel.ebpf.features` answers whether the kernel has a program type, map type or helper;
`gotel.ebpf.cgroup` finds a process's cgroup v2 directory, `gotel.ebpf.pidfd` borrows its
file descriptors."""

from __future__ import annotations

from gotel.ebpf.attachments import MapAttachment
from gotel.ebpf.btf import Field, Leaf, StructLayout, UnknownNameError
from gotel.ebpf.libbpf import libbpf_version
from gotel.ebpf.objects import BpfObject, Link, destroy_links
from gotel.ebpf.ringbuf import HEADER_SIZE, RingBuffer, record_stride

__all__ = [
    "HEADER_SIZE",
    "BpfObject",
    "Field",
    "Leaf",
    "Link",
    "MapAttachment",
    "RingBuffer",
    "StructLayout",
    "UnknownNameError",
    "destroy_links",
    "libbpf_version",
    "record_stride",
]
