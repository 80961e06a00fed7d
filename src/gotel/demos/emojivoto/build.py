"""Building what the demo runs: the four emojivoto services from the Go sources shipped in
this package (services/), and Jaeger from its Go module through the module proxy."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gotel.demo import go_command
from gotel.demos.emojivoto.progress import (
    HEARTBEAT_S,
    Say,
    compiled_packages,
    directory_bytes,
    elapsed,
    run_step,
)
from gotel.errors import GotelError

SERVICES_SOURCE = Path(__file__).resolve().parent / "services"  # a Go module, package data
SERVICES = ("emoji", "voting", "web", "vote-bot")

# The approved Jaeger release: Jaeger v2 releases are published under v1 module versions.
JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_VERSION = "v1.75.0"
JAEGER_RELEASE = "Jaeger v2.12.0"
JAEGER_LABEL = f"{JAEGER_RELEASE} ({JAEGER_MODULE}@{JAEGER_VERSION} cmd/jaeger, memory storage)"

SERVICES_BUILD_TIMEOUT_S = 15 * 60
JAEGER_BUILD_TIMEOUT_S = 40 * 60


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "gotel" / "emojivoto"


def jaeger_home(cache: Path) -> Path:
    """Where this Jaeger version is built: one folder per version, so a build of another
    version left in the cache is never taken for this one."""
    return cache / "jaeger" / JAEGER_VERSION


def _go(
    args: list[str],
    *,
    cwd: Path,
    timeout: float,
    what: str,
    say: Say | None = None,
    detail: Callable[[str], str] | None = None,
) -> str:
    return run_step(
        [go_command(), *args], cwd=cwd, timeout=timeout, what=what, say=say, detail=detail
    )


def _module_cache() -> Path | None:
    found = _go(["env", "GOMODCACHE"], cwd=Path.cwd(), timeout=60, what="asking go env").strip()
    return Path(found) / "cache" / "download" if found else None


def _download_progress() -> Callable[[str], str]:
    """A detail for heartbeats: megabytes the Go module cache grew by since the step began."""
    try:
        root = _module_cache()
    except GotelError:
        root = None
    if root is None:
        return lambda _stderr: ""
    before = directory_bytes(root)
    return lambda _stderr: f"{(directory_bytes(root) - before) / 1e6:.0f} MB of modules downloaded"


def _compile_progress(total: int | None) -> Callable[[str], str]:
    def detail(stderr: str) -> str:
        done = compiled_packages(stderr)
        if total:
            return f"{done} of at most {total} packages compiled"
        return f"{done} packages compiled"

    return detail


def build_services(out_dir: Path, say: Say | None = None) -> dict[str, Path]:
    """Compile the four emojivoto programs into out_dir (Go's build cache keeps it quick)."""
    if not (SERVICES_SOURCE / "go.mod").is_file():
        raise GotelError(f"emojivoto: the Go sources are missing from {SERVICES_SOURCE}")
    out_dir.mkdir(parents=True, exist_ok=True)
    _go(
        ["build", "-v", "-o", f"{out_dir}{os.sep}", "./cmd/..."],
        cwd=SERVICES_SOURCE,
        timeout=SERVICES_BUILD_TIMEOUT_S,
        what="building emojivoto",
        say=say,
        detail=_compile_progress(None),
    )
    return {name: out_dir / name for name in SERVICES}


@contextlib.contextmanager
def _file_lock(path: Path, on_wait: Callable[[], None]) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_jaeger(home: Path, say: Say | None = None) -> Path:
    """Jaeger's cmd/jaeger from its module: downloaded through the proxy, built once.

    `go install module/cmd/jaeger@version` refuses modules with replace directives (Jaeger's
    go.mod has one), so the module's source is copied out of the module cache and built as
    the main module, with its own go.mod and go.sum.
    """
    binary = home / "jaeger"
    if binary.exists():
        return binary
    note = say or (lambda _text: None)
    waiting = f"emojivoto: another gotel demo is building Jaeger into {home}; waiting for it"
    with _file_lock(home / ".lock", lambda: note(waiting)):  # one build, however many demos
        if binary.exists():
            return binary
        started = time.monotonic()
        note(
            f"emojivoto: building {JAEGER_RELEASE} ({JAEGER_MODULE}@{JAEGER_VERSION}) into "
            f"{home}: first time only, about 10 minutes on 2 cores (~1.3 GB of modules, then "
            f"~2300 packages to compile); progress every {HEARTBEAT_S:.0f}s"
        )
        source = home / "src"
        if not (source / "go.mod").exists():
            note(f"emojivoto: [1/3] fetching Jaeger's source ({JAEGER_MODULE}@{JAEGER_VERSION})")
            _copy_module_source(source, say)
        note("emojivoto: [2/3] downloading the modules Jaeger's cmd/jaeger imports")
        listing = _go(
            ["list", "-deps", "-f", "{{.ImportPath}}", "./cmd/jaeger"],
            cwd=source,
            timeout=JAEGER_BUILD_TIMEOUT_S,
            what="downloading Jaeger's modules",
            say=say,
            detail=_download_progress(),
        )
        packages = len(listing.split())
        note(
            f"emojivoto: [3/3] compiling cmd/jaeger: {packages} packages, less those already in "
            f"Go's build cache ({elapsed(started)} so far)"
        )
        partial_binary = home / "jaeger.partial"
        _go(
            ["build", "-v", "-o", str(partial_binary), "./cmd/jaeger"],
            cwd=source,
            timeout=JAEGER_BUILD_TIMEOUT_S,
            what="compiling Jaeger",
            say=say,
            detail=_compile_progress(packages),
        )
        partial_binary.rename(binary)
        note(f"emojivoto: built {JAEGER_RELEASE} in {elapsed(started)}: {binary}")
    return binary


def _copy_module_source(source: Path, say: Say | None) -> None:
    listing = _go(
        ["mod", "download", "-json", f"{JAEGER_MODULE}@{JAEGER_VERSION}"],
        cwd=source.parent,
        timeout=JAEGER_BUILD_TIMEOUT_S,
        what="fetching Jaeger's source",
        say=say,
    )
    module = json.loads(listing)
    if module.get("Error") or not module.get("Dir"):
        raise GotelError(f"emojivoto: fetching Jaeger's source failed: {module.get('Error')}")
    partial = source.with_name("src.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(module["Dir"], partial)
    for path in [partial, *partial.rglob("*")]:  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    partial.rename(source)
