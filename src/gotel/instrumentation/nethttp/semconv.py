"""HTTP semantic conventions (1.37) shared by the server and client spans."""

from __future__ import annotations

KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)


def method_attributes(method: str) -> tuple[str, dict[str, str]]:
    """The method for span names and its attributes; unknown methods become _OTHER."""
    if method in KNOWN_METHODS:
        return method, {"http.request.method": method}
    return "HTTP", {"http.request.method": "_OTHER", "http.request.method_original": method}


def protocol_version(major: int, minor: int) -> str | None:
    if major <= 0:
        return None
    return str(major) if major >= 2 and minor == 0 else f"{major}.{minor}"


def route_from_pattern(pattern: str) -> str:
    """A ServeMux pattern "[METHOD ][HOST]/path" -> the path template http.route wants."""
    slash = pattern.find("/")
    return pattern[slash:] if slash >= 0 else ""
