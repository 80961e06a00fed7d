"""What a struct offset is asked for: the fields a probe declares it reads.

The offsets layer (database, resolution, tracker) works on these declarations alone and
imports nothing of the instrumentation; probes declare their fields with StructField.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

STD = "std"  # the standard library's "module": its version is the Go version


@dataclass(frozen=True)
class StructField:
    """A struct field a probe reads; its byte offset fills the BPF constant `const`."""

    struct: str  # as DWARF names it: "net/http.Request"
    field: str  # "Method"
    const: str  # `volatile const __u64` in the BPF object
    module: str = STD
    required: bool = True  # optional fields leave the constant at GOTEL_OFFSET_ABSENT

    @property
    def key(self) -> str:
        return f"{self.struct}.{self.field}"


class Declares(Protocol):
    """What the tracker needs of a probe: the fields it reads and the oldest Go it runs on."""

    @property
    def fields(self) -> tuple[StructField, ...]: ...

    @property
    def min_go(self) -> str: ...
