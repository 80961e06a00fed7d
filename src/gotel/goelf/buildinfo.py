"""The `.go.buildinfo` blob: Go version, main module, dependencies and build settings.

Layout (Go's runtime/debug and debug/buildinfo): 14-byte magic, pointer size, flags. With flag
bit 1 set (Go >= 1.18) the version and the module text follow at offset 32 as uvarint-length
strings; before that, offset 16 holds two pointers to Go string headers.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from gotel.goelf.elffile import ElfImage

MAGIC = b"\xff Go buildinf:"
_ALIGN = 16  # the linker aligns the blob; a scan only tries these offsets
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE_STRINGS = 0x2
_SENTINEL_LEN = 16  # modinfo is wrapped in 16 random bytes on each side


@dataclass(frozen=True)
class ModuleLine:
    path: str
    version: str
    sum: str = ""
    replace: ModuleLine | None = None


@dataclass
class BuildInfo:
    go_version: str
    path: str = ""
    main: ModuleLine | None = None
    deps: list[ModuleLine] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)


class BuildInfoError(ValueError):
    """The blob is there but cannot be decoded; the caller words the user-facing error."""


def find_blob(img: ElfImage) -> bytes | None:
    """The bytes from the magic to the end of its section (or segment), or None if absent."""
    sec = img.section(".go.buildinfo")
    if sec is not None:
        raw = img.section_bytes(sec)
        return raw if raw.startswith(MAGIC) else None
    # No section headers (or a renamed section): scan writable data like debug/buildinfo does.
    for seg in img.loads():
        if seg.flags & 0x2 == 0:  # PF_W: the blob lives in writable data
            continue
        start, end = seg.offset, seg.offset + seg.filesz
        pos = img.data.find(MAGIC, start, end)
        while pos >= 0:
            if (pos - start) % _ALIGN == 0:
                return bytes(img.data[pos:end])
            pos = img.data.find(MAGIC, pos + 1, end)
    return None


def parse(img: ElfImage, blob: bytes) -> BuildInfo:
    if len(blob) < 32:
        raise BuildInfoError("build info header is truncated")
    ptr_size, flags = blob[14], blob[15]
    if flags & _FLAG_INLINE_STRINGS:
        version, pos = _read_varint_string(blob, 32)
        modinfo, _ = _read_varint_string(blob, pos)
    else:
        version, modinfo = _read_pointer_strings(img, blob, ptr_size, flags)
    if not version:
        raise BuildInfoError("build info has no Go version")
    info = BuildInfo(go_version=version.decode("utf-8", "replace"))
    _parse_modinfo(_strip_sentinels(modinfo).decode("utf-8", "replace"), info)
    return info


def _read_varint_string(blob: bytes, pos: int) -> tuple[bytes, int]:
    n, shift = 0, 0
    while True:
        if pos >= len(blob) or shift > 63:
            raise BuildInfoError("build info string length is truncated")
        b = blob[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    if pos + n > len(blob):
        raise BuildInfoError("build info string runs past its section")
    return blob[pos : pos + n], pos + n


def _read_pointer_strings(img: ElfImage, blob: bytes, ptr_size: int,
                          flags: int) -> tuple[bytes, bytes]:
    """Go 1.13-1.17: two pointers to string headers (data pointer, length)."""
    if ptr_size not in (4, 8) or flags & _FLAG_BIG_ENDIAN:
        raise BuildInfoError(f"build info has pointer size {ptr_size}, flags {flags:#x}")
    word, pair = ("<Q", "<QQ") if ptr_size == 8 else ("<I", "<II")
    out = []
    for i in range(2):
        (hdr_addr,) = struct.unpack_from(word, blob, 16 + i * ptr_size)
        hdr = img.read_vaddr(hdr_addr, 2 * ptr_size)
        if hdr is None:
            out.append(b"")
            continue
        data_addr, length = struct.unpack_from(pair, hdr)
        raw = img.read_vaddr(data_addr, length) if 0 < length < 1 << 20 else None
        out.append(raw or b"")
    return out[0], out[1]


def _strip_sentinels(modinfo: bytes) -> bytes:
    # Same rule as Go's debug/buildinfo: keep the text only if the sentinels frame it.
    # On bytes: the sentinels are not UTF-8.
    if len(modinfo) >= 2 * _SENTINEL_LEN + 1 and modinfo[-_SENTINEL_LEN - 1] == 0x0A:
        return modinfo[_SENTINEL_LEN:-_SENTINEL_LEN]
    return b""


def _parse_modinfo(text: str, info: BuildInfo) -> None:
    last_is_dep: bool | None = None  # which module a "=>" line replaces
    for line in text.split("\n"):
        kind, _, rest = line.partition("\t")
        cols = rest.split("\t")
        if kind == "path":
            info.path = rest
        elif kind in ("mod", "dep") and len(cols) in (2, 3):
            mod = ModuleLine(cols[0], cols[1], cols[2] if len(cols) == 3 else "")
            if kind == "mod":
                info.main, last_is_dep = mod, False
            else:
                info.deps.append(mod)
                last_is_dep = True
        elif kind == "=>" and len(cols) == 3 and last_is_dep is not None:
            rep = ModuleLine(cols[0], cols[1], cols[2])
            if last_is_dep:
                old = info.deps[-1]
                info.deps[-1] = ModuleLine(old.path, old.version, old.sum, rep)
            elif info.main is not None:
                info.main = ModuleLine(info.main.path, info.main.version, info.main.sum, rep)
            last_is_dep = None
        elif kind == "build" and rest:
            key, value = _split_setting(rest)
            if key:
                info.settings[key] = value


def _split_setting(kv: str) -> tuple[str, str]:
    if kv[0] in "\"`":
        m = _QUOTED.match(kv)
        if m is None or kv[m.end() : m.end() + 1] != "=":
            return "", ""
        return go_unquote(m.group(0)), _value(kv[m.end() + 1 :])
    key, _, raw = kv.partition("=")
    return key, _value(raw)


def _value(raw: str) -> str:
    return go_unquote(raw) if raw[:1] in ("\"", "`") else raw


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "\\": "\\", "'": "'", '"': '"'}


def go_unquote(s: str) -> str:
    """strconv.Unquote for the values `go build` records; malformed input is returned as is."""
    if len(s) >= 2 and s[0] == s[-1] == "`":
        return s[1:-1]
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        return s
    out = bytearray()
    pos = 0
    body = s[1:-1]
    for m in _ESCAPE.finditer(body):
        out.extend(body[pos : m.start()].encode())
        e = m.group(1)
        if e[0] in "xuU" and len(e) > 1:
            n = int(e[1:], 16)
            if e[0] == "x":
                out.append(n)
            else:
                out.extend((chr(n) if n <= 0x10FFFF else "\ufffd").encode("utf-8", "surrogatepass"))
        elif len(e) == 3 and e.isdigit():
            out.append(int(e, 8) & 0xFF)
        else:
            out.extend(_SIMPLE.get(e, e).encode())
        pos = m.end()
    out.extend(body[pos:].encode())
    return out.decode("utf-8", "replace")
