"""`gotel offsets update|show`: the command-line face of the tracker and the database."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from gotel.errors import EXIT_OK, GotelError
from gotel.offsets import database
from gotel.offsets.fields import STD, Declares
from gotel.offsets.versions import go_release, series

_DB_HELP = (f"database file (default: ${database.DB_ENV} if set, else the one bundled with "
            "gotel)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="offsets_command", required=True)
    update = sub.add_parser(
        "update", help="build small programs against Go releases and module versions, and "
        "record the offsets of the struct fields the probes declare",
        description="Without --go or --module: every stable Go release the probes apply to and "
        "every version of each library module a probe declares fields of. Versions already "
        "recorded are skipped.")
    update.add_argument("--go", action="append", metavar="VERSIONS",
                        help="Go releases: 1.26.9, 1.26 (every patch), 1.21.0..1.26.x; repeatable")
    update.add_argument("--module", action="append", metavar="MODULE[@VERSIONS]",
                        help="a library module, all its versions or e.g. "
                        "google.golang.org/grpc@v1.60.0..v1.62.x; repeatable")
    update.add_argument("--jobs", type=int, default=1, help="scans in parallel (default 1)")
    update.add_argument("--force", action="store_true", help="rescan recorded versions too")
    update.add_argument("--db", type=Path, help=_DB_HELP)

    show = sub.add_parser("show", help="print the offsets database")
    show.add_argument("--module", help="only this module (std: the standard library)")
    show.add_argument("--field", help="only this field (net/http.Request.Pattern) or struct")
    show.add_argument("--version", help="values for this one version (1.26.9, go1.26.9, v1.60.0)")
    show.add_argument("--db", type=Path, help=_DB_HELP)


def run(args: argparse.Namespace, probes: Callable[[], Sequence[Declares]],
        out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """`probes` gives what the probes declare (update measures exactly those fields)."""
    path = args.db or database.default_path()
    if args.offsets_command == "update":
        from gotel.offsets.tracker import parse_request, update

        if args.jobs < 1:
            raise GotelError("--jobs must be at least 1")
        request = parse_request(args.go, args.module)
        return update(request, probes(), path, jobs=args.jobs, force=args.force, err=err)
    try:
        db = database.load(path)
    except database.DatabaseError as e:
        raise GotelError(str(e)) from None
    try:
        show(db, out, module=args.module, field=args.field, version=args.version)
        out.flush()
    except BrokenPipeError:  # `gotel offsets show | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return EXIT_OK


def show(db: database.OffsetsDatabase, out: TextIO, *, module: str | None = None,
         field: str | None = None, version: str | None = None) -> None:
    if not db.modules:
        out.write("the offsets database is empty (run: gotel offsets update)\n")
        return
    if module is not None and module not in db.modules:
        raise GotelError(f"module {module} is not in the offsets database (it has: "
                         + ", ".join(db.modules) + ")")
    for name, rec in db.modules.items():
        if module is not None and name != module:
            continue
        key_version = _key(name, version) if version else None
        out.write(f"{name}: {len(rec.versions)} versions scanned: {_spans(rec.versions)}\n")
        for v, why in rec.failed.items():
            out.write(f"  failed {v}: {why}\n")
        keys = [k for k in sorted(rec.fields)
                if field is None or k == field or k.startswith(field + ".")]
        width = max((len(k) for k in keys), default=0)
        for key in keys:
            if key_version is not None:
                look = db.lookup(name, key_version, key)
                value = {database.Status.OFFSET: str(look.offset),
                         database.Status.ABSENT: "absent"}.get(look.status, f"unknown ({look.why})")
                out.write(f"  {key:<{width}}  {key_version}  {value}\n")
                continue
            ranges = database.compact(rec.versions, rec.fields[key])
            for i, (first, last, value) in enumerate(ranges):
                label = key if i == 0 else ""
                span = first if first == last else f"{first}..{last}"
                shown = "absent" if value is None else str(value)
                out.write(f"  {label:<{width}}  {span:<17} {shown}\n")
        if field is not None and not keys:
            out.write(f"  no field {field} recorded\n")


def _key(module: str, version: str) -> str:
    if module == STD:
        return go_release(version if version.startswith("go") else "go" + version) or version
    return version if version.startswith("v") else "v" + version


def _spans(versions: list[str]) -> str:
    """"1.21.0..1.21.13, 1.22.0..1.22.12": runs of one release series."""
    groups: dict[str, list[str]] = {}
    for v in versions:
        groups.setdefault(series(v), []).append(v)
    return ", ".join(g[0] if len(g) == 1 else f"{g[0]}..{g[-1]} ({len(g)})"
                     for g in groups.values()) or "none"
