"""Builds of Go test programs and parsers for the Go and binutils tools the tests diff against.

Nothing here uses gotel: each helper reads what a reference tool prints (`go version -m`,
`go tool nm`, `go tool objdump`, `readelf`), so the tests compare two independent views.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HTTPSERVER = REPO / "src" / "gotel" / "demoapp"
BUILD_ROOT = REPO / "tests" / ".build" / "goelf"  # gitignored; survives sessions

LOCAL = "local"  # the toolchain on PATH (/usr/local/go: Go 1.26)
OLD_TOOLCHAINS = ("go1.21.13", "go1.22.12")

FLAVORS: dict[str, tuple[str, ...]] = {
    "default": (),
    "stripped": ("-ldflags=-s -w",),
    "pie": ("-buildmode=pie",),
    "pie-stripped": ("-buildmode=pie", "-ldflags=-s -w"),
    "ext": ("-ldflags=-linkmode=external",),
    "ext-stripped": ("-ldflags=-linkmode=external -s -w",),
    "ext-pie": ("-buildmode=pie", "-ldflags=-linkmode=external"),
    "ext-pie-stripped": ("-buildmode=pie", "-ldflags=-linkmode=external -s -w"),
}


# What gotel's probes look up, and the builds each is checked on.
PROBED = [
    "net/http.serverHandler.ServeHTTP",
    "net/http.(*Transport).roundTrip",
    "net/http.(*response).WriteHeader",
    "runtime.newproc1",
    "main.main",
    "net/textproto.(*Reader).readContinuedLineSlice",
]

GO121, GO122 = OLD_TOOLCHAINS
VARIANTS = [
    (LOCAL, "default"), (LOCAL, "stripped"), (LOCAL, "pie"), (LOCAL, "pie-stripped"),
    (LOCAL, "ext"), (LOCAL, "ext-stripped"), (LOCAL, "ext-pie"), (LOCAL, "ext-pie-stripped"),
    (GO121, "default"), (GO121, "stripped"), (GO121, "pie"), (GO121, "pie-stripped"),
    (GO121, "ext-pie"), (GO121, "ext-pie-stripped"),
    (GO122, "default"), (GO122, "stripped"),
]
# Full-table checks: plain stripped, text start not at .text (external linking), and a
# pclntab with no section of its own (external PIE on 1.21).
FULL_TABLE = [(LOCAL, "stripped"), (LOCAL, "ext-stripped"), (GO121, "ext-pie-stripped")]


def variant_id(v: tuple[str, str]) -> str:
    return "-".join(v)


def unstripped(flavor: str) -> str:
    """The flavor built with identical flags except `-s -w`."""
    return flavor.removesuffix("-stripped") if flavor != "stripped" else "default"


class BuildUnavailable(Exception):
    """A toolchain or a C linker this machine does not have (the test skips with the reason)."""


def go_exe() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(found, os.X_OK):
        raise BuildUnavailable("go toolchain not found on PATH")
    return found


@functools.cache
def go_build_cache() -> str:
    """The user's Go build cache, read once: it defaults to $XDG_CACHE_HOME/go-build, and the
    tests point XDG_CACHE_HOME at temporary directories (that would rebuild the world)."""
    return subprocess.run([go_exe(), "env", "GOCACHE"], capture_output=True, text=True,
                          env=dict(os.environ, GOTOOLCHAIN=LOCAL)).stdout.strip()


def go_env(toolchain: str = LOCAL) -> dict[str, str]:
    env = dict(os.environ, GOTOOLCHAIN=toolchain, GOFLAGS="-buildvcs=false")
    if go_build_cache():
        env["GOCACHE"] = go_build_cache()
    env["PATH"] = str(Path(go_exe()).parent) + os.pathsep + env.get("PATH", "")
    return env


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env or go_env(), capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res.stdout


@dataclass(frozen=True)
class Built:
    path: Path
    toolchain: str
    flavor: str


class GoBuilder:
    """Builds (app, toolchain, flavor) once; reuses outputs across sessions by content key."""

    def __init__(self, root: Path = BUILD_ROOT) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._failed: dict[tuple[str, str, str], str] = {}

    def build(self, app: Path, toolchain: str = LOCAL, flavor: str = "default",
              extra: tuple[str, ...] = (), name: str | None = None,
              target: str = ".") -> Built:
        key = (str(app), toolchain, " ".join((flavor, *extra, target)))
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._failed:
                raise BuildUnavailable(self._failed[key])
            try:
                return self._build(app, toolchain, flavor, extra, name, target)
            except BuildUnavailable as e:
                self._failed[key] = str(e)
                raise

    def _build(self, app: Path, toolchain: str, flavor: str, extra: tuple[str, ...],
               name: str | None, target: str) -> Built:
        flags = (*FLAVORS[flavor], *extra)
        if "linkmode=external" in " ".join(flags) and shutil.which("gcc") is None:
            raise BuildUnavailable("external linking needs gcc")
        out = self.root / f"{name or app.name}-{toolchain}-{flavor}"
        stamp = out.parent / (out.name + ".key")
        digest = _source_digest(app, toolchain, (*flags, target))
        if out.exists() and stamp.exists() and stamp.read_text() == digest:
            return Built(out, toolchain, flavor)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            run([go_exe(), "build", "-o", str(out), *flags, target], cwd=app,
                env=go_env(toolchain))
        except RuntimeError as e:
            if toolchain != LOCAL and "toolchain" in str(e):
                raise BuildUnavailable(f"cannot get Go toolchain {toolchain}: {e}") from None
            raise
        stamp.write_text(digest)
        return Built(out, toolchain, flavor)


def _source_digest(app: Path, toolchain: str, flags: tuple[str, ...]) -> str:
    h = hashlib.sha256(json.dumps([toolchain, flags]).encode())
    go = Path(go_exe()).resolve()
    h.update(f"{go}:{go.stat().st_mtime_ns}".encode())
    for p in sorted(app.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(app)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


# --- programs written by the tests ------------------------------------------------------------
OFFSET_PROBE = {
    "go.mod": """module gotel.test/offsetprobe

go 1.21

require example.com/greet v1.2.3

replace example.com/greet => ./greet
""",
    "main.go": """// offsetprobe prints unsafe.Offsetof for exported fields gotel reads from DWARF.
package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"unsafe"

	"example.com/greet"
)

var note string

func main() {
	var r http.Request
	var u url.URL
	off := map[string]uintptr{
		"net/http.Request.Method": unsafe.Offsetof(r.Method),
		"net/http.Request.URL":    unsafe.Offsetof(r.URL),
		"net/http.Request.Header": unsafe.Offsetof(r.Header),
		"net/url.URL.Path":        unsafe.Offsetof(u.Path),
		"net/url.URL.RawQuery":    unsafe.Offsetof(u.RawQuery),
	}
	addPattern(off)
	_ = greet.Hello() + note
	json.NewEncoder(os.Stdout).Encode(off)
}
""",
    "pattern.go": """//go:build go1.23

package main

import (
	"net/http"
	"unsafe"
)

func addPattern(off map[string]uintptr) {
	var r http.Request
	off["net/http.Request.Pattern"] = unsafe.Offsetof(r.Pattern)
}
""",
    "nopattern.go": """//go:build !go1.23

package main

func addPattern(map[string]uintptr) {}
""",
    "greet/go.mod": "module example.com/greet\n\ngo 1.21\n",
    "greet/greet.go": "package greet\n\nfunc Hello() string { return \"hi\" }\n",
}

NO_MODULE = {
    "hello.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists() or p.read_text() != text:  # keep mtimes stable for the build cache
            p.write_text(text)
    return root


# --- reference tool output -------------------------------------------------------------------
@dataclass(frozen=True)
class VersionM:
    go_version: str
    path: str
    main: tuple[str, str] | None
    deps: dict[str, str]
    replaced: dict[str, tuple[str, str]]
    settings: dict[str, str]


def go_version_m(binary: Path) -> VersionM:
    out = run([go_exe(), "version", "-m", str(binary)])
    lines = out.splitlines()
    go_version = lines[0].split(": ", 1)[1].strip()
    path, main, deps, replaced, settings = "", None, {}, {}, {}
    last = None
    for line in lines[1:]:
        cols = line.strip("\n").lstrip("\t").split("\t")
        kind = cols[0]
        if kind == "path":
            path = cols[1]
        elif kind == "mod":
            main, last = (cols[1], cols[2]), None
        elif kind == "dep":
            deps[cols[1]] = cols[2]
            last = cols[1]
        elif kind == "=>" and last:
            replaced[last] = (cols[1], cols[2])
        elif kind == "build":
            k, _, v = cols[1].partition("=")
            settings[k] = json.loads(v) if v.startswith('"') else v
    return VersionM(go_version, path, main, deps, replaced, settings)


def go_nm(binary: Path) -> dict[str, tuple[int, int]]:
    """name -> (address, size) of text symbols, as `go tool nm -size` prints them."""
    out = run([go_exe(), "tool", "nm", "-size", str(binary)])
    syms: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+)\s+(\d+)\s+([Tt])\s+(.+)$", line)
        if m:
            syms.setdefault(m.group(4), (int(m.group(1), 16), int(m.group(2))))
    return syms


@dataclass(frozen=True)
class Insn:
    address: int
    encoding: bytes
    text: str


def go_objdump(binary: Path, names: list[str]) -> dict[str, list[Insn]]:
    """name -> instructions, as `go tool objdump -s '^(names)$'` lists them."""
    regex = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    out = run([go_exe(), "tool", "objdump", "-s", regex, str(binary)])
    funcs: dict[str, list[Insn]] = {}
    current: list[Insn] | None = None
    for line in out.splitlines():
        if line.startswith("TEXT "):
            current = funcs.setdefault(line[5:].split("(SB)")[0], [])
            continue
        m = re.match(r"\s+\S+\t+(0x[0-9a-f]+)\t+([0-9a-f]+)\t+(.*?)\s*$", line)
        if m and current is not None:
            current.append(Insn(int(m.group(1), 16), bytes.fromhex(m.group(2)), m.group(3)))
    return funcs


def gnu_objdump(binary: Path, start: int, stop: int) -> list[Insn]:
    """Instructions binutils' objdump decodes in [start, stop): works on stripped binaries."""
    out = run(["objdump", "-d", "--insn-width=16", f"--start-address={start:#x}",
               f"--stop-address={stop:#x}", str(binary)], env=dict(os.environ, LC_ALL="C"))
    insns = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$", line)
        if m:
            insns.append(Insn(int(m.group(1), 16), bytes.fromhex(m.group(2)),
                              m.group(3).strip()))
    return insns


@dataclass(frozen=True)
class Load:
    offset: int
    vaddr: int
    filesz: int


def readelf_loads(binary: Path) -> list[Load]:
    out = run(["readelf", "-lW", str(binary)], env=dict(os.environ, LC_ALL="C"))
    loads = []
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["LOAD"]:
            loads.append(Load(int(parts[1], 16), int(parts[2], 16), int(parts[4], 16)))
    return loads


def vaddr_to_offset(loads: list[Load], addr: int) -> int:
    for ld in loads:
        if ld.vaddr <= addr < ld.vaddr + ld.filesz:
            return addr - ld.vaddr + ld.offset
    raise AssertionError(f"{addr:#x} is in no PT_LOAD segment")


def readelf_struct_fields(binary: Path, structs: set[str]) -> dict[str, dict[str, int]]:
    """struct -> field -> offset for the named DW_TAG_structure_type DIEs, via readelf."""
    proc = subprocess.Popen(["readelf", "--debug-dump=info", "-W", str(binary)],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, LC_ALL="C"))
    assert proc.stdout is not None
    found: dict[str, dict[str, int]] = {}
    die_re = re.compile(r"\s*<(\d+)><[0-9a-f]+>: Abbrev Number: \d+ \((\w+)\)")
    attr_re = re.compile(r"\s*<[0-9a-f]+>\s+(DW_AT_\w+)\s*: (.*)$")
    in_struct: str | None = None
    pending_struct = False
    member: dict[str, str] = {}

    def flush() -> None:
        if in_struct and "DW_AT_name" in member and "DW_AT_data_member_location" in member:
            found[in_struct].setdefault(member["DW_AT_name"],
                                        int(member["DW_AT_data_member_location"]))

    for line in proc.stdout:
        m = die_re.match(line)
        if m:
            flush()
            member = {}
            depth, tag = int(m.group(1)), m.group(2)
            if depth <= 1:
                in_struct = None
                pending_struct = tag == "DW_TAG_structure_type"
            elif depth == 2 and in_struct and tag == "DW_TAG_member":
                member = {"tag": tag}
            continue
        a = attr_re.match(line)
        if not a:
            continue
        attr = a.group(1)
        value = re.sub(r"^\((?:indirect )?\w+\) ", "", a.group(2).strip())  # -W prints forms
        if pending_struct and attr == "DW_AT_name":
            pending_struct = False
            if value in structs and value not in found:
                in_struct = value
                found[value] = {}
        elif member:
            member[attr] = value
    flush()
    proc.wait()
    return found
