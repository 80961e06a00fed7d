"""Version keys, their order, and the --go / --module selections."""

from __future__ import annotations

import pytest

from gotel.errors import GotelError
from gotel.offsets.versions import (
    go_release,
    go_releases_from_toolchains,
    parse_selection,
    sort_versions,
)


@pytest.mark.parametrize(
    ("go_version", "key"),
    [
        ("go1.26.8", "1.26.8"),
        ("go1.21.0", "1.21.0"),
        ("go1.24.1 X:noswissmap", None),  # experiments may change runtime layouts
        ("go1.21rc2", None),
        ("devel go1.27-0123abcd Mon Jan 1 2026", None),
        ("go1.20", None),
        ("", None),
    ],
)
def test_go_release(go_version, key):
    assert go_release(go_version) == key


def test_sort_versions_is_numeric_with_prereleases_first():
    assert sort_versions(["1.22.10", "1.22.9", "1.21.13", "1.22.10"]) == [
        "1.21.13", "1.22.9", "1.22.10"]
    assert sort_versions(["v1.60.0", "v1.9.0", "v1.60.0-pre", "v1.59.1"]) == [
        "v1.9.0", "v1.59.1", "v1.60.0-pre", "v1.60.0"]


KNOWN = ["1.21.0", "1.21.13", "1.22.0", "1.22.12", "1.26.0", "1.26.9", "1.26.11", "1.27.0"]


@pytest.mark.parametrize(
    ("text", "picked"),
    [
        ("1.26.9", ["1.26.9"]),
        ("go1.26.9", ["1.26.9"]),
        ("1.26.42", ["1.26.42"]),  # exact versions are taken as given, listed or not
        ("1.26", ["1.26.0", "1.26.9", "1.26.11"]),
        ("1.26.x", ["1.26.0", "1.26.9", "1.26.11"]),
        ("1.21.0..1.26.x", KNOWN[:-1]),
        ("1.21.13..1.22.0", ["1.21.13", "1.22.0"]),
        ("1.22..", ["1.22.0", "1.22.12", "1.26.0", "1.26.9", "1.26.11", "1.27.0"]),
        ("..1.21.x", ["1.21.0", "1.21.13"]),
    ],
)
def test_go_selections(text, picked):
    assert parse_selection(text).pick(KNOWN) == picked


def test_module_selections():
    known = ["v1.59.0", "v1.60.0", "v1.60.1", "v1.61.0", "v1.62.0-pre"]
    assert parse_selection("v1.60.0", prefix="v").pick(known) == ["v1.60.0"]
    assert parse_selection("1.60.1", prefix="v").pick(known) == ["v1.60.1"]
    assert parse_selection("v1.60.0..v1.61.x").pick(known) == ["v1.60.0", "v1.60.1", "v1.61.0"]


@pytest.mark.parametrize("text", ["..", "latest", "1.x.2..1.3", "1.21.0..banana"])
def test_bad_selections_are_gotel_errors(text):
    with pytest.raises(GotelError):
        parse_selection(text)


def test_toolchain_list_gaps_are_filled_up_to_the_newest_listed_patch():
    listed = [
        "v0.0.1-go1.20.linux-amd64",
        "v0.0.1-go1.21rc2.linux-amd64",
        "v0.0.1-go1.21.0.linux-amd64",
        "v0.0.1-go1.21.3.linux-amd64",
        "v0.0.1-go1.21.3.darwin-arm64",
        "v0.0.1-go1.22.2.linux-amd64",
        "v0.0.1-go1.23.5.windows-amd64",  # no linux-amd64 build listed: nothing assumed
    ]
    assert go_releases_from_toolchains(listed) == [
        "1.21.0", "1.21.1", "1.21.2", "1.21.3", "1.22.0", "1.22.1", "1.22.2"]
