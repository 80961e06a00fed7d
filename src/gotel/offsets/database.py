"""gotel's offsets database: (module, version, struct.field) -> byte offset, as measured.

On disk (data/offsets.json, written by `gotel offsets update`), per module:

  "versions": every version scanned, in version order;
  "fields":   "struct.field" -> [[first, last, offset], ...]: each range covers the scanned
              versions from `first` to `last` (positions in "versions", inclusive) that share
              one offset; offset null means the field does not exist in those versions;
  "failed":   version -> why its scan failed (treated as never scanned).

A scanned version that no range of a field covers was not scanned for that field (the field
was declared by a probe added later). Lookups are by exact version only: nothing between two
scanned versions is inferred.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from gotel.offsets.versions import series, sort_versions
from gotel.trace import env

SCHEMA = 1
Value = int | None  # None: the field does not exist in that version

DB_ENV = env.GOTEL_OFFSETS_DB  # path of the database to read and update instead of the bundled one
BUNDLED = Path(__file__).resolve().parent / "data" / "offsets.json"


def default_path() -> Path:
    return Path(os.environ.get(DB_ENV) or BUNDLED)


class DatabaseError(ValueError):
    """The file is not a readable offsets database."""


class Status(Enum):
    OFFSET = "offset"  # the field is at `offset` in this version
    ABSENT = "absent"  # the version was scanned: the field does not exist in it
    UNKNOWN = "unknown"  # never scanned (or the scan failed, or predates the field)


@dataclass(frozen=True)
class Lookup:
    status: Status
    offset: int | None = None
    why: str = ""  # for UNKNOWN: what the database knows about this version


# --- range compaction ---------------------------------------------------------------------------
def compact(versions: list[str], values: Mapping[str, Value]) -> list[list[object]]:
    """Runs of consecutive `versions` (all present in `values`) sharing one value."""
    ranges: list[list[object]] = []
    run: list[object] | None = None
    for version in versions:
        if version not in values:
            run = None
            continue
        value = values[version]
        if run is not None and run[2] == value:
            run[1] = version
        else:
            run = [version, version, value]
            ranges.append(run)
    return ranges


def expand(versions: list[str], ranges: Iterable[object]) -> dict[str, Value]:
    """Inverse of compact(); raises DatabaseError on ranges that do not fit `versions`."""
    index = {v: i for i, v in enumerate(versions)}
    out: dict[str, Value] = {}
    for item in ranges:
        if not (isinstance(item, list) and len(item) == 3):
            raise DatabaseError(f"bad range {item!r}")
        first, last, value = item
        if first not in index or last not in index or index[first] > index[last]:
            raise DatabaseError(f"range {item!r} does not match the scanned versions")
        if value is not None and (type(value) is not int or value < 0):
            raise DatabaseError(f"bad offset in range {item!r}")
        for i in range(index[first], index[last] + 1):
            out[versions[i]] = value
    return out


# --- the database -------------------------------------------------------------------------------
@dataclass
class ModuleRecord:
    versions: list[str] = field(default_factory=list)
    fields: dict[str, dict[str, Value]] = field(default_factory=dict)  # key -> version -> value
    failed: dict[str, str] = field(default_factory=dict)

    def has(self, version: str, keys: Iterable[str]) -> bool:
        return all(version in self.fields.get(k, {}) for k in keys)


@dataclass
class OffsetsDatabase:
    modules: dict[str, ModuleRecord] = field(default_factory=dict)

    # --- reading ---------------------------------------------------------------------------------
    def lookup(self, module: str, version: str, key: str) -> Lookup:
        rec = self.modules.get(module)
        if rec is None:
            return Lookup(Status.UNKNOWN, why="never scanned")
        values = rec.fields.get(key, {})
        if version in values:
            value = values[version]
            return Lookup(Status.ABSENT) if value is None else Lookup(Status.OFFSET, value)
        if version in rec.failed:
            return Lookup(Status.UNKNOWN, why=f"its scan failed: {rec.failed[version]}")
        if version in rec.versions:
            return Lookup(Status.UNKNOWN, why="scanned before this field was declared")
        return Lookup(Status.UNKNOWN, why="never scanned")

    def scanned(self, module: str, version: str, keys: Iterable[str]) -> bool:
        rec = self.modules.get(module)
        return rec is not None and rec.has(version, keys)

    # --- writing ---------------------------------------------------------------------------------
    def record(self, module: str, version: str, values: Mapping[str, Value],
               failure: str | None = None) -> None:
        """Store one scan; `failure` notes what could not be measured (retried next time)."""
        rec = self.modules.setdefault(module, ModuleRecord())
        if values and version not in rec.versions:
            rec.versions = sort_versions([*rec.versions, version])
        for key, value in values.items():
            rec.fields.setdefault(key, {})[version] = value
        if failure:
            rec.failed[version] = failure
        else:
            rec.failed.pop(version, None)

    def without_version(self, module: str, version: str) -> OffsetsDatabase:
        """A copy that never scanned `version` of `module` (for tests and what-ifs)."""
        copy = OffsetsDatabase.from_json(self.to_json())
        rec = copy.modules.get(module)
        if rec is not None:
            rec.versions = [v for v in rec.versions if v != version]
            for values in rec.fields.values():
                values.pop(version, None)
            rec.failed.pop(version, None)
        return copy

    # --- serialization ---------------------------------------------------------------------------
    @classmethod
    def from_json(cls, doc: object) -> OffsetsDatabase:
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise DatabaseError(f"not an offsets database of schema {SCHEMA}")
        modules = doc.get("modules")
        if not isinstance(modules, dict):
            raise DatabaseError("no modules")
        db = cls()
        for name, body in modules.items():
            if not isinstance(body, dict):
                raise DatabaseError(f"module {name}: not an object")
            versions = body.get("versions", [])
            fields = body.get("fields", {})
            failed = body.get("failed", {})
            if not (isinstance(versions, list) and all(isinstance(v, str) for v in versions)):
                raise DatabaseError(f"module {name}: bad versions")
            if versions != sort_versions(versions):
                raise DatabaseError(f"module {name}: versions out of order or repeated")
            if not isinstance(fields, dict) or not isinstance(failed, dict):
                raise DatabaseError(f"module {name}: bad fields or failed")
            rec = ModuleRecord(versions=list(versions), failed={
                str(k): str(v) for k, v in failed.items()
            })
            for key, ranges in fields.items():
                if not isinstance(ranges, list):
                    raise DatabaseError(f"module {name}: {key}: not a list of ranges")
                try:
                    rec.fields[key] = expand(rec.versions, ranges)
                except DatabaseError as e:
                    raise DatabaseError(f"module {name}: {key}: {e}") from None
            db.modules[name] = rec
        return db

    def to_json(self) -> dict[str, object]:
        modules: dict[str, object] = {}
        for name in sorted(self.modules, key=lambda m: (m != "std", m)):
            rec = self.modules[name]
            modules[name] = {
                "versions": list(rec.versions),
                "failed": {v: rec.failed[v] for v in sort_versions(rec.failed)},
                "fields": {k: compact(rec.versions, rec.fields[k]) for k in sorted(rec.fields)},
            }
        return {"schema": SCHEMA, "generator": "gotel offsets update", "modules": modules}

    def dumps(self) -> str:
        """JSON with one field per line and one release series per line: small, diffable."""
        doc = self.to_json()
        modules = doc["modules"]
        assert isinstance(modules, dict)
        blocks = []
        for name, body in modules.items():
            groups: dict[str, list[str]] = {}
            for v in body["versions"]:
                groups.setdefault(series(v), []).append(v)
            versions = _lines([json.dumps(g)[1:-1] for g in groups.values()], 8)
            failed = _lines([f"{json.dumps(k)}: {json.dumps(v)}"
                             for k, v in body["failed"].items()], 8)
            fields = _lines([f"{json.dumps(k)}: {json.dumps(r)}"
                             for k, r in body["fields"].items()], 8)
            blocks.append(
                f'    {json.dumps(name)}: {{\n'
                f'      "versions": [{versions}],\n'
                f'      "failed": {{{failed}}},\n'
                f'      "fields": {{{fields}}}\n'
                "    }"
            )
        body = "{\n" + ",\n".join(blocks) + "\n  }" if blocks else "{}"
        return (
            f'{{\n  "schema": {SCHEMA},\n  "generator": {json.dumps(doc["generator"])},\n'
            f'  "modules": {body}\n}}\n'
        )

    def save(self, path: Path) -> None:
        """Atomic: a reader (or an interrupted update) never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o644  # a file to commit and to read by any user, not mkstemp's 0600
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.dumps())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _lines(items: list[str], indent: int) -> str:
    if not items:
        return ""
    pad = " " * indent
    return "\n" + ",\n".join(pad + item for item in items) + "\n" + " " * (indent - 2)


def load(path: Path) -> OffsetsDatabase:
    """Read a database file; a missing file is an empty database."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return OffsetsDatabase()
    except OSError as e:
        raise DatabaseError(f"{path}: {e.strerror or e}") from None
    try:
        return OffsetsDatabase.from_json(json.loads(text))
    except json.JSONDecodeError as e:
        raise DatabaseError(f"{path}: not JSON ({e})") from None
    except DatabaseError as e:
        raise DatabaseError(f"{path}: {e}") from None


_cache: dict[Path, tuple[tuple[int, int], OffsetsDatabase]] = {}


def load_cached(path: Path) -> OffsetsDatabase:
    """load(), re-read only when the file changes (attach time: many binaries, one file)."""
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)
    hit = _cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    db = load(path)
    _cache[path] = (stamp, db)
    return db

