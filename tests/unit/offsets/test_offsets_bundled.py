"""The committed database: complete for today's probes, small, and equal to real binaries' DWARF."""

from __future__ import annotations

from collections import defaultdict

import pytest

from gotel.goelf import open_binary
from gotel.instrumentation.probe import STD
from gotel.instrumentation.registry import all_probes
from gotel.offsets import database
from gotel.offsets.program import declared_fields, std_floor
from gotel.offsets.versions import go_release, version_key
from gotools import build_app

# The stripped end-to-end tests build with these (the newest patch of each series we pin).
E2E_RELEASES = ["1.21.13", "1.22.12", "1.23.12", "1.24.13", "1.25.14", "1.26.11"]


@pytest.fixture(scope="module")
def bundled() -> database.OffsetsDatabase:
    return database.load(database.BUNDLED)


def test_bundled_database_is_small_and_canonical(bundled):
    text = database.BUNDLED.read_text()
    assert len(text) < 32 * 1024
    assert bundled.dumps() == text, "regenerate it with gotel offsets update"


def test_bundled_database_covers_every_declared_std_field(bundled):
    std = bundled.modules[STD]
    floor = version_key(std_floor(all_probes()))
    assert std.versions and version_key(std.versions[0]) <= floor
    missing = defaultdict(list)
    for struct, fields in declared_fields(all_probes())[STD].items():
        for name in fields:
            for version in std.versions:
                if version not in std.fields.get(f"{struct}.{name}", {}):
                    missing[f"{struct}.{name}"].append(version)
    assert not missing, ("fields declared by probes but not in the offsets database; run "
                         f"`gotel offsets update`: {dict(missing)}")
    assert not std.failed, "scans failed; rerun gotel offsets update: " + str(std.failed)
    for v in E2E_RELEASES:
        assert v in std.versions, f"run gotel offsets update --go {v}"


@pytest.mark.parametrize("toolchain", ["go1.21.13", "go1.22.12", None])
def test_database_equals_dwarf(bundled, toolchain):
    binary = build_app("httpserver", toolchain=toolchain)
    with open_binary(binary) as b:
        version = go_release(b.go_version)
        assert version in bundled.modules[STD].versions, (
            f"run gotel offsets update --go {version}")
        keys = {k: values[version] for k, values in bundled.modules[STD].fields.items()
                if version in values}
        pairs = [tuple(k.rsplit(".", 1)) for k in keys]
        dwarf = b.field_offsets(pairs)
    structs_in_dwarf = {s for s, _ in dwarf}
    for key, value in keys.items():
        struct, name = key.rsplit(".", 1)
        if value is None and struct not in structs_in_dwarf:
            continue  # the struct does not exist in this release either
        # Every offset the database holds is checked: the app links all the probed structs.
        assert struct in structs_in_dwarf, f"{struct} not in the DWARF of the Go {version} app"
        assert dwarf.get((struct, name)) == value, f"{key} in Go {version}"
