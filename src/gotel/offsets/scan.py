"""One scan: build the keeper program against one Go release (or module version), read its DWARF.

A scan runs `go` with GOTOOLCHAIN=go1.X.Y (the go command fetches that toolchain from the
module proxy once and caches it) in a private directory, and returns the offsets it measured.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gotel.errors import GotelError
from gotel.goelf import dwarf, open_binary
from gotel.goelf.elffile import ElfImage
from gotel.offsets.database import Value
from gotel.offsets.fields import STD
from gotel.offsets.program import (
    LISTER_SOURCE,
    Package,
    StructRef,
    keepers,
    main_source,
    package_missing,
    struct_ref,
)

log = logging.getLogger(__name__)

STEP_TIMEOUT_S = 30 * 60  # one go command (a toolchain download + a cold std build fit easily)
_LIST_FIELDS = "ImportPath,Name,Dir,GoFiles,Imports,Error"
_COMPILE_ERROR = re.compile(r"^\S+\.go:\d+:\d+: ")


class ScanError(Exception):
    """A scan step failed; the message is one line for the database's "failed" notes."""


def find_go() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(found, os.X_OK):
        raise GotelError("go command not found: install Go >= 1.21 and put it on PATH "
                         "(it fetches the other toolchains itself)")
    return found


@dataclass(frozen=True)
class Job:
    module: str  # STD or a module path
    version: str  # database key: "1.22.3" (std) or "v1.60.0"
    structs: Mapping[str, frozenset[str]]  # struct -> fields

    @property
    def label(self) -> str:
        return f"go{self.version}" if self.module == STD else f"{self.module}@{self.version}"

    @property
    def keys(self) -> list[str]:
        return [f"{s}.{f}" for s, fs in self.structs.items() for f in fs]


@dataclass
class ScanResult:
    job: Job
    values: dict[str, Value] = field(default_factory=dict)
    failure: str | None = None
    seconds: float = 0.0


class GoRunner:
    """Runs the go command with a base environment; failures become one-line ScanErrors."""

    def __init__(self, go: str, env: Mapping[str, str] | None = None) -> None:
        self.go = go
        base = dict(os.environ if env is None else env)
        # -mod=readonly: a package missing from a module version must read as missing, never
        # make the go command fetch (and upgrade to) a version that has it.
        flags = " ".join(f for f in base.get("GOFLAGS", "").split() if not f.startswith("-mod="))
        base.update(GOWORK="off", GO111MODULE="on", CGO_ENABLED="0",
                    GOFLAGS=f"{flags} -mod=readonly".strip())
        self.env = base

    def run(self, step: str, args: Sequence[str], cwd: Path,
            env: Mapping[str, str] | None = None) -> str:
        try:
            proc = subprocess.run([self.go, *args], cwd=cwd, env={**self.env, **(env or {})},
                                  capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ScanError(f"{step}: timed out after {STEP_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            raise ScanError(f"{step}: {_last_line(proc.stderr) or f'exit {proc.returncode}'}")
        return proc.stdout


def _last_line(text: str) -> str:
    """The line that says what went wrong: the first compile error, else the last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if _COMPILE_ERROR.match(line):
            return line[:300]
    return (lines[-1] if lines else "")[:300]


def build_lister(runner: GoRunner, workdir: Path) -> Path:
    """Compile the declaration lister once per update, with the local toolchain."""
    src = workdir / "lister"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text("module gotel.lister\n\ngo 1.21\n")
    (src / "main.go").write_text(LISTER_SOURCE)
    runner.run("build the declaration lister", ["build", "-o", "lister", "."], src,
               {"GOTOOLCHAIN": "local"})
    return src / "lister"


def scan(job: Job, runner: GoRunner, lister: Path, workdir: Path) -> ScanResult:
    start = time.monotonic()
    result = ScanResult(job)
    try:
        result.values, problems = _scan(job, runner, lister, workdir)
        result.failure = "; ".join(problems) or None
    except ScanError as e:
        result.failure = str(e)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.seconds = time.monotonic() - start
    return result


def _scan(job: Job, runner: GoRunner, lister: Path,
          workdir: Path) -> tuple[dict[str, Value], list[str]]:
    workdir.mkdir(parents=True, exist_ok=True)
    refs = [struct_ref(s) for s in job.structs]
    env, pattern = _prepare(job, runner, workdir)
    wanted = sorted({r.package for r in refs})
    out = runner.run("go list", ["list", "-e", f"-json={_LIST_FIELDS}", pattern, *wanted],
                     workdir, env)
    universe = {p.path: p for p in map(Package.from_go_list, _json_stream(out))}
    for path in wanted:
        pkg = universe.get(path)
        if pkg is not None and not pkg.go_files and not package_missing(pkg):
            raise ScanError(f"go list {path}: {pkg.error[:300] or 'no Go files'}")
    present = [p for p in wanted if p in universe and universe[p].go_files]
    kept = [universe[p] for p in keepers(present, universe) if p in universe]
    if job.module != STD and kept:
        # Checksums for what the kept packages import, at the module version being scanned.
        runner.run("go get", ["get", *(f"{p.path}@{job.version}" for p in kept)], workdir, env)
    for path in sorted({*(p.path for p in kept), *present}):
        pkg = universe[path]
        files = [str(Path(pkg.dir) / f) for f in pkg.go_files]
        if files:
            pkg.add_declarations(_run_lister(lister, files))
    (workdir / "main.go").write_text(main_source(kept, refs))
    runner.run("go build", ["build", "-o", "prog", "."], workdir, env)

    binary = workdir / "prog"
    _check_linked(job, binary)
    img = ElfImage(binary)
    try:
        found = dwarf.DwarfIndex(img).structs(job.structs)
    except dwarf.DwarfError as e:
        raise ScanError(f"unreadable DWARF in the scan program: {e}") from None
    finally:
        img.close()
    return _values(job, refs, found, universe)


def _prepare(job: Job, runner: GoRunner, workdir: Path) -> tuple[dict[str, str], str]:
    """Set up the scan module; returns the go command's environment and the package universe.

    std is built by exactly its release (GOTOOLCHAIN=go1.X.Y). A library module is built with
    the local toolchain, or the newer one its go.mod asks for: its offsets are keyed by the
    module's version alone, which holds while its structs embed no std type whose size changed
    between Go releases.
    """
    if job.module == STD:
        series = ".".join(job.version.split(".")[:2])
        (workdir / "go.mod").write_text(f"module gotel.scan\n\ngo {series}\n")
        env = {"GOTOOLCHAIN": f"go{job.version}"}
        runner.run(f"fetch toolchain go{job.version}", ["version"], workdir, env)
        return env, "std"
    (workdir / "go.mod").write_text("module gotel.scan\n\ngo 1.21\n")
    runner.run("go get", ["get", f"{job.module}@{job.version}"], workdir)
    return {}, f"{job.module}/..."


def _values(job: Job, refs: list[StructRef], found: Mapping[str, dict[str, int] | None],
            universe: Mapping[str, Package]) -> tuple[dict[str, Value], list[str]]:
    values: dict[str, Value] = {}
    problems: list[str] = []
    for ref in refs:
        members = found.get(ref.name)
        pkg = universe.get(ref.package)
        if pkg is None:
            problems.append(f"go list said nothing about package {ref.package}")
            continue
        if members is None:
            exists = bool(pkg.go_files) and ref.type in pkg.types
            if exists:  # declared in this version's source, yet not linked: measure nothing
                problems.append(f"{ref.name} is declared but the linker dropped it")
                continue
        for name in job.structs[ref.name]:
            values[f"{ref.name}.{name}"] = None if members is None else members.get(name)
    return values, problems


def _check_linked(job: Job, binary: Path) -> None:
    """The program really is what the scan claims to measure (GOTOOLCHAIN honoured, etc.)."""
    with open_binary(binary) as b:
        if job.module == STD:
            have = b.go_version.split(" ", 1)[0]
            if have != f"go{job.version}":
                raise ScanError(f"built with {have or 'an unknown Go'}, not go{job.version}")
        else:
            have = b.modules.get(job.module, "")
            if have != job.version or job.module in b.replaced:
                raise ScanError(f"linked {job.module} {have or '(none)'}, not {job.version}")
        if not b.has_dwarf:
            raise ScanError("the scan program has no DWARF (GOFLAGS with -ldflags=-w?)")


def _run_lister(lister: Path, files: list[str]) -> str:
    proc = subprocess.run([str(lister), *files], capture_output=True, text=True,
                          timeout=STEP_TIMEOUT_S)
    if proc.returncode != 0:
        raise ScanError(f"reading declarations: {_last_line(proc.stderr)}")
    return proc.stdout


def _json_stream(text: str) -> list[dict[str, object]]:
    """`go list -json` prints one object after another, not an array."""
    decoder, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        doc, pos = decoder.raw_decode(text, pos)
        if isinstance(doc, dict):
            out.append(doc)


def list_versions(runner: GoRunner, module: str, workdir: Path) -> list[str]:
    """`go list -m -versions MODULE`: every version the proxy lists (retracted ones omitted)."""
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        out = runner.run(f"go list -m -versions {module}", ["list", "-m", "-versions", module],
                         workdir, {"GOTOOLCHAIN": "local", "GOFLAGS": ""})
    except ScanError as e:
        raise GotelError(f"cannot list versions of {module}: {e}; check the module path and "
                         "that the module proxy is reachable") from None
    fields = out.split()
    return fields[1:] if fields and fields[0] == module else []
