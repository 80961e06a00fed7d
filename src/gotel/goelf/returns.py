"""x86-64 disassembly of single functions (capstone): RET sites and code length.

Return probes are uprobes on every RET (uretprobes corrupt Go's movable stacks), so the
function's bytes are decoded linearly from its entry. Go never mixes data into .text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from capstone import Cs

_cs: Cs | None = None


def _disassembler() -> Cs:
    global _cs
    if _cs is None:
        # Imported on first use: capstone costs 20 ms at import, most callers never disassemble.
        from capstone import CS_ARCH_X86, CS_MODE_64, Cs

        cs = Cs(CS_ARCH_X86, CS_MODE_64)
        cs.skipdata = True  # keep going past a stray byte rather than stop early
        _cs = cs
    return _cs


def _insns(code: bytes) -> Iterator[tuple[int, int, str]]:
    for addr, size, mnemonic, _ in _disassembler().disasm_lite(code, 0):
        yield addr, size, mnemonic


def ret_offsets(code: bytes) -> list[int]:
    """Offsets within `code` of every `ret` (including `ret imm16`)."""
    return [off for off, _, mnemonic in _insns(code) if mnemonic == "ret"]


def code_length(code: bytes) -> int:
    """Length of `code` without the alignment padding the linker put after it.

    Go pads with INT3; gcc (cgo code in the same binary) with NOPs after a final jump or
    return. Decoding rather than stripping 0xCC bytes keeps a last `jmp -52` (EB CC) whole,
    and a Go function's own trailing NOP after a call to panic stays in.
    """
    end = 0
    last_real = ""
    for off, size, mnemonic in _insns(code):
        if mnemonic == "int3":
            continue
        if mnemonic == "nop" and last_real in ("ret", "jmp"):
            continue  # padding after an unconditional exit
        if mnemonic != "nop":
            last_real = mnemonic
        end = off + size
    return end
