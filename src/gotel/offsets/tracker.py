"""`gotel offsets update`: measure the fields the probes declare, per release, into the database.

What to measure comes from the probe declarations (`all_probes()` -> `probe.fields`, grouped by
module; std's version is the Go release), so a new probe never means editing the tracker.
Versions already recorded for every declared field are skipped; a failed scan is recorded as
such (its versions stay unknown) and retried by the next update. The database is saved after
every scan, so an interrupted update keeps what it measured.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gotel.errors import EXIT_ENVIRONMENT, EXIT_OK, GotelError
from gotel.offsets import database
from gotel.offsets.fields import STD, Declares
from gotel.offsets.program import declared_fields, std_floor
from gotel.offsets.progress import Progress
from gotel.offsets.scan import (
    GoRunner,
    Job,
    ScanResult,
    build_lister,
    find_go,
    list_versions,
    scan,
)
from gotel.offsets.versions import (
    TOOLCHAIN_MODULE,
    Selection,
    go_releases_from_toolchains,
    is_stable,
    parse_selection,
    sort_versions,
)


@dataclass(frozen=True)
class Request:
    """What to scan: std releases and/or library modules, each with optional selections."""

    go: tuple[Selection, ...] | None  # None: std not asked for (or everything, see `everything`)
    modules: tuple[tuple[str, Selection | None], ...]
    everything: bool = False  # neither --go nor --module: all std releases and all modules


def parse_request(go: Sequence[str] | None, modules: Sequence[str] | None) -> Request:
    if not go and not modules:
        return Request(go=(), modules=(), everything=True)
    sels = tuple(parse_selection(g) for g in go or ())
    mods = []
    for spec in modules or ():
        path, _, version = spec.partition("@")
        if path == STD:
            raise GotelError("use --go for the standard library (e.g. --go 1.26.9)")
        mods.append((path, parse_selection(version, prefix="v") if version else None))
    return Request(go=sels if go else None, modules=tuple(mods))


def plan_jobs(request: Request, probes: Sequence[Declares], db: database.OffsetsDatabase,
              runner: GoRunner, workdir: Path, *, force: bool = False) -> tuple[list[Job], int]:
    """The scans to run and how many selected versions are already recorded."""
    declared = declared_fields(probes)
    targets: list[tuple[str, list[str]]] = []
    if request.everything or request.go is not None:
        if STD not in declared:
            raise GotelError("no probe declares standard library fields: nothing to scan")
        targets.append((STD, _std_versions(request, probes, runner, workdir)))
    modules = list(request.modules)
    if request.everything:
        modules = [(m, None) for m in sorted(declared) if m != STD]
    for module, sel in modules:
        if module not in declared:
            raise GotelError(f"no probe declares fields of module {module}; known modules: "
                             + ", ".join(sorted(declared)))
        listed = [] if sel is not None and sel.exact else list_versions(runner, module, workdir)
        versions = [v for v in listed if is_stable(v)]
        targets.append((module, sel.pick(versions) if sel is not None else versions))

    jobs, recorded = [], 0
    for module, versions in targets:
        structs = {s: frozenset(fs) for s, fs in declared[module].items()}
        keys = [f"{s}.{f}" for s, fs in structs.items() for f in fs]
        for version in sort_versions(versions):
            if not force and db.scanned(module, version, keys):
                recorded += 1
            else:
                jobs.append(Job(module, version, structs))
    return jobs, recorded


def _std_versions(request: Request, probes: Sequence[Declares], runner: GoRunner,
                  workdir: Path) -> list[str]:
    sels = request.go or ()
    if sels and all(s.exact for s in sels):
        return [s.exact for s in sels if s.exact]  # exactly what was asked: no listing needed
    releases = go_releases_from_toolchains(list_versions(runner, TOOLCHAIN_MODULE, workdir))
    floor = parse_selection(std_floor(probes) + "..")
    releases = [v for v in releases if floor.matches(v)]
    if not sels:
        return releases
    return sorted({v for s in sels for v in s.pick(releases)})


def update(request: Request, probes: Sequence[Declares], db_path: Path, *, jobs: int = 1,
           force: bool = False, err: TextIO = sys.stderr) -> int:
    try:
        db = database.load(db_path)
    except database.DatabaseError as e:
        raise GotelError(f"{e}; fix or delete it, then run the update again") from None
    runner = GoRunner(find_go())
    root = Path(tempfile.mkdtemp(prefix="gotel-offsets-"))
    try:
        todo, recorded = plan_jobs(request, probes, db, runner, root / "list", force=force)
        print(f"offsets: {len(todo)} to scan, {recorded} already recorded ({db_path})", file=err)
        if not todo:
            return EXIT_OK
        if not os.access(db_path.parent if db_path.parent.exists() else Path.cwd(), os.W_OK):
            raise GotelError(f"cannot write {db_path}; choose another file with --db or "
                             f"${database.DB_ENV}")
        lister = build_lister(runner, root)
        results = _run(todo, runner, lister, root, max(1, jobs), db, db_path, err)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    failed = [r for r in results if r.failure]
    size = db_path.stat().st_size if db_path.exists() else 0
    print(f"offsets: {len(results) - len(failed)} scanned, {len(failed)} failed; "
          f"{db_path} is {size / 1024:.1f} KB", file=err)
    for r in failed:
        print(f"offsets:   {r.job.label}: {r.failure}", file=err)
    if results and all(r.failure and not r.values for r in results):
        print("offsets: every scan failed; check that the go command can reach the module "
              "proxy (GOPROXY)", file=err)
        return EXIT_ENVIRONMENT
    return EXIT_OK


def _run(todo: list[Job], runner: GoRunner, lister: Path, root: Path, jobs: int,
         db: database.OffsetsDatabase, db_path: Path, err: TextIO) -> list[ScanResult]:
    progress = Progress(len(todo), err)
    results: list[ScanResult] = []
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="offsets-scan")
    try:
        futures: dict[Future[ScanResult], Job] = {}
        for i, job in enumerate(todo):
            futures[pool.submit(_scan_one, job, runner, lister, root / f"scan{i}", progress)] = job
        for future in _finished(futures):
            result = future.result()
            results.append(result)
            db.record(result.job.module, result.job.version, result.values, result.failure)
            db.save(db_path)
            progress.done(result)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        progress.close()
        print(f"offsets: interrupted; {len(results)} scans saved in {db_path}", file=err)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()
    return results


def _scan_one(job: Job, runner: GoRunner, lister: Path, workdir: Path,
              progress: Progress) -> ScanResult:
    progress.started(job)
    return scan(job, runner, lister, workdir)


def _finished(futures: Iterable[Future[ScanResult]]) -> Iterator[Future[ScanResult]]:
    """Futures as they complete; short waits keep Ctrl-C responsive."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        yield from done
