"""`gotel offsets update|show`: what gets scanned, incrementally, and how it is shown."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from gotel.errors import GotelError
from gotel.instrumentation.probe import STD, Probe, StructField
from gotel.offsets.command import show
from gotel.offsets.database import OffsetsDatabase, load
from gotel.offsets.tracker import parse_request, plan_jobs, update
from gotel.offsets.versions import Selection, parse_selection

GRPC = "google.golang.org/grpc"


def fake_probe(*fields: StructField, module: str = STD) -> Probe:
    return Probe(name="fake", module=module, bpf_object=Path("/nonexistent.bpf.o"), hooks=(),
                 fields=fields, event="fake_event", describe=lambda _e: None, scope="test")


PROBES = [
    fake_probe(StructField("net/http.Request", "Method", "a"),
               StructField("runtime.g", "goid", "b")),
    fake_probe(StructField(f"{GRPC}/internal/transport.Stream", "method", "c", module=GRPC),
               module=GRPC),
]


class FakeRunner:
    """Stands in for the go command: answers `go list -m -versions` from a table."""

    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self.calls: list[list[str]] = []

    def run(self, step, args, cwd, env=None):
        self.calls.append(list(args))
        module = args[-1]
        return f"{module} {self.versions[module]}\n"


TOOLCHAINS = " ".join(f"v0.0.1-go{v}.linux-amd64" for v in ["1.21.0", "1.21.2", "1.22.1"])


def test_parse_request():
    everything = parse_request(None, None)
    assert everything.everything
    req = parse_request(["1.26.9", "1.21.0..1.22.x"], [GRPC, f"{GRPC}@v1.60.0"])
    assert req.go == (Selection(exact="1.26.9"), parse_selection("1.21.0..1.22.x"))
    assert req.modules == ((GRPC, None), (GRPC, Selection(exact="v1.60.0")))
    assert parse_request(None, [GRPC]).go is None  # --module alone: no std scans
    with pytest.raises(GotelError, match="--go"):
        parse_request(None, ["std"])


def test_everything_means_every_release_and_every_declared_module(tmp_path):
    runner = FakeRunner({"golang.org/toolchain": TOOLCHAINS, GRPC: "v1.59.0 v1.60.0-pre v1.60.0"})
    jobs, recorded = plan_jobs(parse_request(None, None), PROBES, OffsetsDatabase(), runner,
                               tmp_path)
    assert [(j.module, j.version) for j in jobs] == [
        (STD, "1.21.0"), (STD, "1.21.1"), (STD, "1.21.2"), (STD, "1.22.0"), (STD, "1.22.1"),
        (GRPC, "v1.59.0"), (GRPC, "v1.60.0"),  # pre-releases are not scanned
    ]
    assert recorded == 0
    assert jobs[0].structs == {"net/http.Request": {"Method"}, "runtime.g": {"goid"}}
    assert jobs[-1].structs == {f"{GRPC}/internal/transport.Stream": {"method"}}


def test_recorded_versions_are_skipped_unless_a_field_is_new_or_forced(tmp_path):
    runner = FakeRunner({"golang.org/toolchain": TOOLCHAINS})
    db = OffsetsDatabase()
    db.record(STD, "1.21.0", {"net/http.Request.Method": 0, "runtime.g.goid": 152})
    db.record(STD, "1.21.1", {"net/http.Request.Method": 0})  # before runtime.g.goid existed
    db.record(STD, "1.21.2", {}, failure="go build: boom")
    jobs, recorded = plan_jobs(parse_request(["1.21"], None), PROBES, db, runner, tmp_path)
    assert [j.version for j in jobs] == ["1.21.1", "1.21.2"]
    assert recorded == 1
    jobs, recorded = plan_jobs(parse_request(["1.21"], None), PROBES, db, runner, tmp_path,
                               force=True)
    assert [j.version for j in jobs] == ["1.21.0", "1.21.1", "1.21.2"]


def test_exact_versions_need_no_listing(tmp_path):
    runner = FakeRunner({})
    jobs, _ = plan_jobs(parse_request(["1.26.9"], [f"{GRPC}@v1.60.0"]), PROBES,
                        OffsetsDatabase(), runner, tmp_path)
    assert [(j.module, j.version) for j in jobs] == [(STD, "1.26.9"), (GRPC, "v1.60.0")]
    assert runner.calls == []


def test_module_ranges_pick_listed_versions(tmp_path):
    runner = FakeRunner({GRPC: "v1.59.0 v1.60.0 v1.60.1 v1.61.0 v1.62.0"})
    jobs, _ = plan_jobs(parse_request(None, [f"{GRPC}@v1.60.0..v1.61.x"]), PROBES,
                        OffsetsDatabase(), runner, tmp_path)
    assert [j.version for j in jobs] == ["v1.60.0", "v1.60.1", "v1.61.0"]


def test_a_module_no_probe_declares_is_an_error(tmp_path):
    with pytest.raises(GotelError, match=r"no probe declares fields of module example\.com/x"):
        plan_jobs(parse_request(None, ["example.com/x"]), PROBES, OffsetsDatabase(),
                  FakeRunner({}), tmp_path)


def test_update_of_a_real_module_version_range(tmp_path):
    """--module end to end on a small real module: fields of a fake probe, two versions."""
    sync = "golang.org/x/sync"
    probe = fake_probe(
        StructField(f"{sync}/semaphore.Weighted", "waiters", "a", module=sync),
        StructField(f"{sync}/singleflight.call", "dups", "b", module=sync),  # unexported
        StructField(f"{sync}/errgroup.Group", "sem", "c", module=sync),
        module=sync)
    path = tmp_path / "offsets.json"
    err = io.StringIO()
    assert update(parse_request(None, [f"{sync}@v0.6.0..v0.7.x"]), [probe], path, jobs=2,
                  err=err) == 0
    assert "2 to scan" in err.getvalue()
    db = load(path)
    assert db.modules[sync].versions == ["v0.6.0", "v0.7.0"]
    for key in ["semaphore.Weighted.waiters", "singleflight.call.dups", "errgroup.Group.sem"]:
        assert isinstance(db.lookup(sync, "v0.7.0", f"{sync}/{key}").offset, int), key
    err = io.StringIO()
    update(parse_request(None, [f"{sync}@v0.6.0..v0.7.x"]), [probe], path, err=err)
    assert "0 to scan, 2 already recorded" in err.getvalue()


def test_show(tmp_path):
    db = OffsetsDatabase()
    for v, pat in [("1.22.0", 248), ("1.22.1", 248), ("1.23.0", 264)]:
        db.record(STD, v, {"net/http.Request.pat": pat, "runtime.g.goid": 152})
    db.record(STD, "1.21.0", {"net/http.Request.pat": None, "runtime.g.goid": 152})
    db.record(STD, "1.23.1", {}, failure="go build: boom")
    out = io.StringIO()
    show(db, out)
    text = out.getvalue()
    assert "std: 4 versions scanned: 1.21.0, 1.22.0..1.22.1 (2), 1.23.0" in text
    assert "failed 1.23.1: go build: boom" in text
    assert "net/http.Request.pat  1.21.0            absent" in text
    assert "                      1.22.0..1.22.1    248" in text
    assert "runtime.g.goid        1.21.0..1.23.0    152" in text

    out = io.StringIO()
    show(db, out, field="net/http.Request", version="go1.22.1")
    assert out.getvalue().splitlines()[-1:] == ["  net/http.Request.pat  1.22.1  248"]
    out = io.StringIO()
    show(db, out, field="runtime.g.goid", version="1.22.5")
    assert "unknown (never scanned)" in out.getvalue()
    with pytest.raises(GotelError, match="not in the offsets database"):
        show(db, io.StringIO(), module=GRPC)


def test_cli_show_and_bad_input(tmp_path):
    db = OffsetsDatabase()
    db.record(STD, "1.22.0", {"runtime.g.goid": 152})
    path = tmp_path / "offsets.json"
    db.save(path)
    gotel = [sys.executable, "-m", "gotel.cli", "offsets"]
    ok = subprocess.run([*gotel, "show", "--db", str(path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "runtime.g.goid  1.22.0            152" in ok.stdout
    bad = subprocess.run([*gotel, "update", "--go", "latest", "--db", str(path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "bad version" in bad.stderr
    path.write_text("{broken")
    broken = subprocess.run([*gotel, "show", "--db", str(path)], capture_output=True, text=True)
    assert broken.returncode == 2 and "not JSON" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_failures_are_recorded_not_fatal(tmp_path):
    path = tmp_path / "offsets.json"
    err = io.StringIO()
    code = update(parse_request(["1.21.999"], None), PROBES[:1], path, err=err)
    assert code == 3  # every scan failed: most likely no proxy; the database still says so
    assert "go1.21.999" in err.getvalue()
    db = load(path)
    assert "1.21.999" in db.modules[STD].failed
    assert db.lookup(STD, "1.21.999", "runtime.g.goid").status.value == "unknown"
