"""Pure analysis of a Go ELF binary: versions, modules, functions, RET sites, struct offsets."""

from gotel.goelf.binary import Function, GoBinary, Module, open_binary

__all__ = ["Function", "GoBinary", "Module", "open_binary"]
