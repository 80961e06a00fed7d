"""Version strings the offsets database is keyed by, their order, and the selections users type.

std is keyed by the Go release without its "go" prefix ("1.26.8"); library modules by their
module version as buildinfo records it ("v1.60.0"). Only exact versions are ever looked up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gotel.errors import GotelError

_GO_RELEASE = re.compile(r"^go(\d+)\.(\d+)\.(\d+)$")
_NUMERIC = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_BOUND = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+|x))?$")


def go_release(go_version: str) -> str | None:
    """The database key of a binary's Go version: "go1.26.8" -> "1.26.8".

    The database measures default builds of releases. Development builds, release candidates
    and GOEXPERIMENT builds ("go1.24.1 X:noswissmap": runtime layouts may differ) are not: None.
    """
    match = _GO_RELEASE.match(go_version.strip())
    return ".".join(match.groups()) if match else None


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """Sort key: numeric components, then pre-releases before the release they precede."""
    match = _NUMERIC.match(version)
    if not match:
        return ((), 0, version)
    *nums, pre = match.groups()
    return (tuple(int(n) for n in nums), 0 if pre else 1, pre or "")


def sort_versions(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=version_key)


def is_stable(version: str) -> bool:
    match = _NUMERIC.match(version)
    return bool(match) and match.group(4) is None


def series(version: str) -> str:
    """"1.22.3" -> "1.22", "v1.60.0" -> "v1.60": what a patch release belongs to."""
    return version.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Selection:
    """One --go or --module version selection: an exact version, or a closed range.

    Bounds are "1.21.0", "1.26.x" (any patch), "1.26" (= 1.26.x); an open end is None.
    "1.26" alone selects every 1.26 patch release.
    """

    exact: str | None = None
    low: tuple[int, int, int] | None = None
    high: tuple[int, int, float] | None = None

    def matches(self, version: str) -> bool:
        if self.exact is not None:
            return version == self.exact
        nums = version_key(version)[0]
        if len(nums) != 3 or not is_stable(version):
            return False
        if self.low is not None and nums < self.low:
            return False
        return self.high is None or nums <= self.high

    def pick(self, known: Sequence[str]) -> list[str]:
        """The selected versions among `known`; an exact version is taken as given."""
        if self.exact is not None:
            return [self.exact]
        return [v for v in known if self.matches(v)]


def parse_selection(text: str, *, prefix: str = "") -> Selection:
    """Parse "1.21.0..1.26.x", "1.26.9", "1.26", "1.23.." ("v" forms for modules)."""
    text = text.strip().removeprefix("go")
    if ".." in text:
        low_text, high_text = text.split("..", 1)
        low = _bound(low_text, text, upper=False) if low_text else None
        high = _bound(high_text, text, upper=True) if high_text else None
        if low is None and high is None:
            raise GotelError(f"version range {text!r} has no bounds (e.g. 1.21.0..1.26.x)")
        return Selection(low=low, high=high)
    match = _BOUND.match(text)
    if match and (match.group(3) in (None, "x")):
        return Selection(low=_bound(text, text, upper=False), high=_bound(text, text, upper=True))
    if not _NUMERIC.match(text):
        raise GotelError(f"bad version {text!r} (expected e.g. 1.26.9, 1.26, 1.21.0..1.26.x)")
    bare = text.removeprefix("v")
    return Selection(exact=prefix + bare)


def _bound(text: str, whole: str, *, upper: bool) -> tuple[int, int, int] | tuple[int, int, float]:
    match = _BOUND.match(text.strip())
    if not match:
        raise GotelError(f"bad version bound {text!r} in {whole!r} "
                         "(expected e.g. 1.26.9 or 1.26.x)")
    major, minor, patch = match.groups()
    if patch in (None, "x"):
        return (int(major), int(minor), float("inf")) if upper else (int(major), int(minor), 0)
    return (int(major), int(minor), int(patch))


# --- Go releases on the module proxy ------------------------------------------------------------
TOOLCHAIN_MODULE = "golang.org/toolchain"
_TOOLCHAIN_VERSION = re.compile(r"^v0\.0\.1-go(\d+)\.(\d+)\.(\d+)\.linux-amd64$")


def go_releases_from_toolchains(listed: Iterable[str]) -> list[str]:
    """Stable Go releases from `go list -m -versions golang.org/toolchain` output.

    The proxy's list of toolchain versions is incomplete (it lists go1.21.0, .6 and .13 but
    serves every 1.21 patch). Go numbers patch releases consecutively, so every patch up to the
    newest one listed in a series exists; nothing past the newest listed is assumed.
    """
    newest: dict[tuple[int, int], int] = {}
    for item in listed:
        match = _TOOLCHAIN_VERSION.match(item)
        if match:
            major, minor, patch = (int(g) for g in match.groups())
            newest[(major, minor)] = max(patch, newest.get((major, minor), -1))
    # Before Go 1.21 a series' first release had no ".0" ("go1.20"): it starts at patch 1.
    return [
        f"{major}.{minor}.{patch}"
        for (major, minor), top in sorted(newest.items())
        for patch in range(0 if (major, minor) >= (1, 21) else 1, top + 1)
    ]
