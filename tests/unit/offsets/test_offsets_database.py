"""The offsets database format: range compaction, exact-version lookups, the file on disk."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from gotel.offsets import database
from gotel.offsets.database import DatabaseError, OffsetsDatabase, Status, compact, expand

VERSIONS = ["1.21.0", "1.21.1", "1.22.0", "1.22.1", "1.23.0", "1.24.0"]


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"1.21.0": 152},
        dict.fromkeys(VERSIONS, 152),
        {"1.21.0": 152, "1.21.1": 152, "1.22.0": 152, "1.22.1": 160, "1.23.0": 160,
         "1.24.0": 160},
        # absent in the old releases, then present
        {"1.21.0": None, "1.21.1": None, "1.22.0": 248, "1.22.1": 248, "1.23.0": 232,
         "1.24.0": 232},
        # holes: versions not scanned for this field break the runs
        {"1.21.0": 8, "1.22.0": 8, "1.22.1": 8, "1.24.0": 8},
        {"1.21.1": None, "1.24.0": None},
    ],
)
def test_compact_and_expand_round_trip(values):
    ranges = compact(VERSIONS, values)
    assert expand(VERSIONS, ranges) == values
    # Maximal runs: two neighbouring ranges never share a value unless a hole separates them.
    index = {v: i for i, v in enumerate(VERSIONS)}
    for a, b in itertools.pairwise(ranges):
        assert a[2] != b[2] or index[b[0]] > index[a[1]] + 1


def test_compact_is_the_documented_shape():
    values = {"1.21.0": 152, "1.21.1": 152, "1.22.0": 152, "1.23.0": 160, "1.24.0": 160}
    versions = ["1.21.0", "1.21.1", "1.22.0", "1.23.0", "1.24.0"]
    assert compact(versions, values) == [["1.21.0", "1.22.0", 152], ["1.23.0", "1.24.0", 160]]


@pytest.mark.parametrize(
    "ranges",
    [
        [["1.21.0", "1.99.0", 1]],  # endpoint never scanned
        [["1.22.0", "1.21.0", 1]],  # reversed
        [["1.21.0", "1.21.0", -1]],
        [["1.21.0", "1.21.0", "8"]],
        [["1.21.0", "1.21.0"]],
        ["1.21.0"],
    ],
)
def test_expand_rejects_damaged_ranges(ranges):
    with pytest.raises(DatabaseError):
        expand(VERSIONS, ranges)


def sample() -> OffsetsDatabase:
    db = OffsetsDatabase()
    for v in ["1.21.0", "1.21.13", "1.22.0", "1.22.12"]:
        db.record("std", v, {"runtime.g.goid": 152, "net/http.Request.pat":
                             None if v.startswith("1.21") else 248})
    db.record("std", "1.23.0", {"runtime.g.goid": 160, "net/http.Request.pat": 264,
                                "net/http.Request.Pattern": 232})
    db.record("std", "1.23.1", {}, failure="go build: boom")
    return db


def test_lookup_is_by_exact_version():
    db = sample()
    got = db.lookup("std", "1.22.0", "runtime.g.goid")
    assert (got.status, got.offset) == (Status.OFFSET, 152)
    assert db.lookup("std", "1.23.0", "runtime.g.goid").offset == 160
    # absent: scanned, the field does not exist there
    assert db.lookup("std", "1.21.13", "net/http.Request.pat").status is Status.ABSENT
    # 1.21.5 lies inside the range 1.21.0..1.22.12 of goid=152 but was never scanned
    inside = db.lookup("std", "1.21.5", "runtime.g.goid")
    assert (inside.status, inside.offset, inside.why) == (Status.UNKNOWN, None, "never scanned")
    assert db.lookup("std", "1.99.0", "runtime.g.goid").why == "never scanned"
    assert db.lookup("grpc", "v1.60.0", "x.y").why == "never scanned"
    # scanned, but before this field was declared by a probe
    late = db.lookup("std", "1.22.0", "net/http.Request.Pattern")
    assert (late.status, late.why) == (Status.UNKNOWN, "scanned before this field was declared")
    failed = db.lookup("std", "1.23.1", "runtime.g.goid")
    assert failed.status is Status.UNKNOWN and "go build: boom" in failed.why


def test_inserting_a_version_inside_a_range_does_not_extend_other_fields():
    db = sample()
    db.record("std", "1.21.5", {"runtime.g.goid": 152})  # only one field measured
    assert db.lookup("std", "1.21.5", "runtime.g.goid").offset == 152
    assert db.lookup("std", "1.21.5", "net/http.Request.pat").status is Status.UNKNOWN
    reread = OffsetsDatabase.from_json(json.loads(db.dumps()))
    assert reread.lookup("std", "1.21.5", "net/http.Request.pat").status is Status.UNKNOWN
    assert reread.lookup("std", "1.21.13", "net/http.Request.pat").status is Status.ABSENT


def test_file_round_trip_and_layout(tmp_path):
    db = sample()
    path = tmp_path / "offsets.json"
    db.save(path)
    text = path.read_text()
    doc = json.loads(text)
    assert doc["modules"]["std"]["versions"] == ["1.21.0", "1.21.13", "1.22.0", "1.22.12",
                                                  "1.23.0"]
    assert doc["modules"]["std"]["failed"] == {"1.23.1": "go build: boom"}
    assert doc["modules"]["std"]["fields"]["runtime.g.goid"] == [
        ["1.21.0", "1.22.12", 152], ["1.23.0", "1.23.0", 160]]
    assert '"runtime.g.goid": [["1.21.0", "1.22.12", 152], ["1.23.0", "1.23.0", 160]]' in text
    assert database.load(path).to_json() == db.to_json()
    assert list(tmp_path.iterdir()) == [path]  # atomic write left no temporary behind
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_successful_rescan_clears_the_failure():
    db = sample()
    db.record("std", "1.23.1", {"runtime.g.goid": 160})
    assert "1.23.1" not in db.modules["std"].failed
    assert db.lookup("std", "1.23.1", "runtime.g.goid").offset == 160


def test_scanned_needs_every_key():
    db = sample()
    assert db.scanned("std", "1.23.0", ["runtime.g.goid", "net/http.Request.Pattern"])
    assert not db.scanned("std", "1.22.0", ["runtime.g.goid", "net/http.Request.Pattern"])
    assert not db.scanned("std", "1.23.1", ["runtime.g.goid"])
    assert not db.scanned("other", "v1.0.0", [])


def test_without_version():
    db = sample()
    copy = db.without_version("std", "1.22.0")
    assert copy.lookup("std", "1.22.0", "runtime.g.goid").why == "never scanned"
    assert copy.lookup("std", "1.22.12", "runtime.g.goid").offset == 152
    assert db.lookup("std", "1.22.0", "runtime.g.goid").offset == 152  # original untouched


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"schema": 99, "modules": {}}',
        '{"schema": 1}',
        '{"schema": 1, "modules": {"std": {"versions": ["1.22.0", "1.21.0"]}}}',
        '{"schema": 1, "modules": {"std": {"versions": ["1.21.0"], "fields": '
        '{"a.b": [["1.21.0", "1.21.1", 1]]}}}}',
    ],
)
def test_damaged_files_are_one_line_errors(tmp_path, text):
    path = tmp_path / "offsets.json"
    path.write_text(text)
    with pytest.raises(DatabaseError, match=re.escape(str(path))) as info:
        database.load(path)
    assert "\n" not in str(info.value)


def test_missing_file_is_empty(tmp_path):
    assert database.load(tmp_path / "none.json").modules == {}


def test_env_variable_points_at_another_database(tmp_path, monkeypatch):
    monkeypatch.delenv(database.DB_ENV, raising=False)
    assert database.default_path() == database.BUNDLED
    monkeypatch.setenv(database.DB_ENV, str(tmp_path / "x.json"))
    assert database.default_path() == tmp_path / "x.json"


def test_load_cached_rereads_a_changed_file(tmp_path):
    path = tmp_path / "offsets.json"
    sample().save(path)
    first = database.load_cached(path)
    assert database.load_cached(path) is first
    db = sample()
    db.record("std", "1.24.0", {"runtime.g.goid": 160})
    db.save(path)
    assert database.load_cached(path).lookup("std", "1.24.0", "runtime.g.goid").offset == 160
