"""Generic libbpf runtime: open a BPF object, set its constants, load, attach uprobes,
read maps and ring buffers. Knows nothing of Go or OpenTelemetry.

`gotel.ebpf.features` answers whether the kernel has a program type, map type or helper."""

from __future__ import annotations

from gotel.ebpf.btf import Field, StructLayout, UnknownNameError
from gotel.ebpf.libbpf import libbpf_version
from gotel.ebpf.objects import BpfObject, Link
from gotel.ebpf.ringbuf import RingBuffer

__all__ = [
    "BpfObject",
    "Field",
    "Link",
    "RingBuffer",
    "StructLayout",
    "UnknownNameError",
    "libbpf_version",
]
