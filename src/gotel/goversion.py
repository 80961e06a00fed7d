"""Go release strings ("go1.26.8", "go1.21rc2", "1.22") as comparable tuples."""

from __future__ import annotations

import re

_VERSION = re.compile(r"^(?:go)?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_go_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(text.strip())
    if not match:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def at_least(version: str, minimum: str) -> bool:
    have, want = parse_go_version(version), parse_go_version(minimum)
    return have is not None and want is not None and have >= want
