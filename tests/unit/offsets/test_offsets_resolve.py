"""Attach-time resolution: the binary's DWARF, then the database by exact version, else a reason."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from gotel.goelf import Module, open_binary
from gotel.instrumentation.nethttp.probe import SERVER
from gotel.instrumentation.probe import STD, StructField
from gotel.offsets import database
from gotel.offsets.database import OffsetsDatabase
from gotel.offsets.resolve import module_version, resolve_fields
from gotel.offsets.versions import go_release
from gotel.planning import plan_probe
from gotools import BUILD, build_app, go_binary

METHOD = StructField("net/http.Request", "Method", "off_request_method")
PATTERN = StructField("net/http.Request", "Pattern", "off_request_pattern", required=False)
GRPC_FIELD = StructField("google.golang.org/grpc.Server", "opts", "off_opts",
                         module="google.golang.org/grpc")


@pytest.fixture(scope="module")
def stripped() -> Path:
    return build_app("httpserver", stripped=True)


@pytest.fixture(scope="module")
def unstripped() -> Path:
    return build_app("httpserver")


@pytest.fixture(scope="module")
def no_module_list() -> Path:
    """Built from a file list outside any module, stripped: no module list, no DWARF."""
    src = BUILD / "offsets-nomodule"
    src.mkdir(parents=True, exist_ok=True)
    (src / "hello.go").write_text('package main\n\nimport "net/http"\n\n'
                                  'func main() { _ = http.ListenAndServe("x", nil) }\n')
    out = src / "hello"
    if not out.exists():
        env = dict(os.environ, GOTOOLCHAIN="local", GO111MODULE="on", GOWORK="off",
                   GOFLAGS="")
        subprocess.run([go_binary(), "build", "-ldflags=-s -w", "-o", str(out), "hello.go"],
                       cwd=src, env=env, check=True, capture_output=True)
    return out


def db_for(binary: Path, method: int | None = 0, pattern: int | None = 232) -> OffsetsDatabase:
    with open_binary(binary) as b:
        version = go_release(b.go_version)
    assert version
    db = OffsetsDatabase()
    db.record(STD, version, {METHOD.key: method, PATTERN.key: pattern})
    return db


def test_dwarf_comes_first(unstripped):
    db = db_for(unstripped, method=999)  # a wrong database value is never used over DWARF
    with open_binary(unstripped) as b:
        got = resolve_fields(b, [METHOD], db)[METHOD]
    assert (got.offset, got.source) == (0, "dwarf")


def test_stripped_binaries_use_the_database_by_exact_version(stripped):
    db = db_for(stripped)
    with open_binary(stripped) as b:
        got = resolve_fields(b, [METHOD, PATTERN], db)
    assert (got[METHOD].offset, got[METHOD].source) == (0, "database")
    assert (got[PATTERN].offset, got[PATTERN].source) == (232, "database")


def test_absent_in_the_scanned_version(stripped):
    db = db_for(stripped, pattern=None)
    with open_binary(stripped) as b:
        got = resolve_fields(b, [PATTERN], db)[PATTERN]
    assert (got.offset, got.source, got.absent) == (None, "database", True)


def test_never_scanned_names_the_version_and_the_fix(stripped):
    with open_binary(stripped) as b:
        version = go_release(b.go_version)
        got = resolve_fields(b, [METHOD], OffsetsDatabase())[METHOD]
    assert (got.offset, got.source, got.absent) == (None, "missing", False)
    assert got.note == (f"Go {version}: the binary has no DWARF, and gotel's offsets database "
                        "never scanned this version")
    assert got.fix == f"gotel offsets update --go {version}"


def test_a_nearby_version_is_never_used(stripped):
    with open_binary(stripped) as b:
        major, minor, patch = go_release(b.go_version).split(".")
    db = OffsetsDatabase()
    for p in (int(patch) - 1, int(patch) + 1):
        db.record(STD, f"{major}.{minor}.{p}", {METHOD.key: 0})
    with open_binary(stripped) as b:
        assert resolve_fields(b, [METHOD], db)[METHOD].source == "missing"


def test_no_module_list_and_no_dwarf_says_so(no_module_list):
    with open_binary(no_module_list) as b:
        assert not b.has_dwarf and not b.modules and b.main is None
        assert module_version(b, GRPC_FIELD.module) == ""
        got = resolve_fields(b, [GRPC_FIELD], OffsetsDatabase())[GRPC_FIELD]
        std = resolve_fields(b, [METHOD], db_for(no_module_list))[METHOD]
    assert got.source == "missing"
    assert "buildinfo has no module list" in got.note and "no DWARF" in got.note
    assert "-ldflags=-w" in got.fix
    assert std.source == "database"  # std's version is the Go version, always recorded


def test_module_not_linked(stripped):
    with open_binary(stripped) as b:
        assert module_version(b, GRPC_FIELD.module) is None


def test_skip_reason_is_one_line_with_field_version_and_fix(stripped, tmp_path, monkeypatch):
    path = tmp_path / "offsets.json"
    OffsetsDatabase().save(path)
    monkeypatch.setenv(database.DB_ENV, str(path))
    with open_binary(stripped) as b:
        version = go_release(b.go_version)
        plan = plan_probe(b, SERVER)
    assert not plan.applies
    reason = plan.skip_reason
    assert "\n" not in reason
    required = [f.key for f in SERVER.fields if f.required]
    assert re.fullmatch(
        rf"no offsets for (\S+) and {len(required) - 1} more \(Go {re.escape(version)}: the "
        r"binary has no DWARF, and gotel's offsets database never scanned this version\); "
        rf"fix: gotel offsets update --go {re.escape(version)}", reason)
    assert re.match(r"no offsets for (\S+)", reason).group(1) in required
    assert plan.fields["net/http.Request.Method"].source == "missing"


def test_unreadable_database_is_a_reason_not_a_crash(stripped, tmp_path, monkeypatch):
    path = tmp_path / "offsets.json"
    path.write_text("{")
    monkeypatch.setenv(database.DB_ENV, str(path))
    with open_binary(stripped) as b:
        plan = plan_probe(b, SERVER)
    assert "offsets database is unreadable" in plan.skip_reason


def test_the_bundled_database_plans_a_stripped_binary(stripped, monkeypatch):
    monkeypatch.delenv(database.DB_ENV, raising=False)
    with open_binary(stripped) as b:
        plan = plan_probe(b, SERVER)
    assert plan.applies, plan.skip_reason
    # (golang.org/x/net's fields are for its own HTTP/2 server, not linked here.)
    assert {r.source for r in plan.fields.values()} == {"database", "unlinked"}


APP = Module("example.com/app", "(devel)")


class FakeBinary:
    """What resolution reads of a GoBinary, for the branches real builds rarely produce."""

    def __init__(self, go_version: str, modules: dict[str, str] | None = None,
                 main: Module | None = APP,
                 replaced: dict[str, Module] | None = None) -> None:
        self.go_version = go_version
        self.modules = modules or {}
        self.main = main
        self.replaced = replaced or {}
        self.has_dwarf = False

    def field_offsets(self, _wanted):
        return {}


@pytest.mark.parametrize(
    ("binary", "field", "note"),
    [
        (FakeBinary("go1.24.1 X:noswissmap"), METHOD, "no GOEXPERIMENT"),
        (FakeBinary("devel go1.27-abcdef"), METHOD, "default builds of Go releases"),
        (FakeBinary("go1.26.8", {GRPC_FIELD.module: "v1.60.0"},
                    replaced={GRPC_FIELD.module: Module("../grpc", "(devel)")}),
         GRPC_FIELD, "replaced by ../grpc (devel)"),
        (FakeBinary("go1.26.8", main=Module(GRPC_FIELD.module, "(devel)")), GRPC_FIELD,
         "main module"),
    ],
)
def test_versions_the_database_cannot_answer(binary, field, note):
    db = OffsetsDatabase()
    db.record(STD, "1.24.1", {METHOD.key: 0})
    db.record(GRPC_FIELD.module, "v1.60.0", {GRPC_FIELD.key: 8})
    got = resolve_fields(binary, [field], db)[field]
    assert (got.offset, got.source) == (None, "missing")
    assert note in got.note and "no DWARF" in got.note
    assert got.fix == "keep DWARF in the binary (build without -ldflags=-w)"


def test_module_versions_resolve_from_the_database():
    binary = FakeBinary("go1.26.8", {GRPC_FIELD.module: "v1.60.0"})
    db = OffsetsDatabase()
    db.record(GRPC_FIELD.module, "v1.60.0", {GRPC_FIELD.key: 8})
    got = resolve_fields(binary, [GRPC_FIELD], db)[GRPC_FIELD]
    assert (got.offset, got.source) == (8, "database")
    other = resolve_fields(FakeBinary("go1.26.8", {GRPC_FIELD.module: "v1.61.0"}),
                           [GRPC_FIELD], db)[GRPC_FIELD]
    assert other.fix == f"gotel offsets update --module {GRPC_FIELD.module}@v1.61.0"
