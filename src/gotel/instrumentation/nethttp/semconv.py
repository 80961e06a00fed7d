"""HTTP semantic conventions (1.37) shared by the server and client spans."""

from __future__ import annotations

import functools
from urllib.parse import quote, unquote

DEFAULT_PORTS = {"http": 80, "https": 443}

# Query keys whose values are credentials: semantic conventions name the first four;
# the rest are common enough in the wild to never leave the process in clear.
SECRET_QUERY_KEYS = frozenset(
    {
        "awsaccesskeyid",
        "signature",
        "sig",
        "x-goog-signature",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "auth",
        "authorization",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "session",
    }
)

KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)


def method_attributes(method: str) -> tuple[str, dict[str, str]]:
    """The method for span names and its attributes; unknown methods become _OTHER."""
    if method in KNOWN_METHODS:
        return method, {"http.request.method": method}
    return "HTTP", {"http.request.method": "_OTHER", "http.request.method_original": method}


@functools.lru_cache(maxsize=64)
def protocol_version(major: int, minor: int) -> str | None:
    if major <= 0:
        return None
    return str(major) if major >= 2 and minor == 0 else f"{major}.{minor}"


@functools.lru_cache(maxsize=4096)
def route_from_pattern(pattern: str) -> str:
    """A ServeMux pattern "[METHOD ][HOST]/path" -> the path template http.route wants."""
    slash = pattern.find("/")
    return pattern[slash:] if slash >= 0 else ""


def redact_query(query: str) -> str:
    """The query with the values of credential-like keys replaced by REDACTED."""
    parts = []
    for part in query.split("&"):
        key, sep, _ = part.partition("=")
        if sep and unquote(key).lower() in SECRET_QUERY_KEYS:
            part = f"{key}={quote('REDACTED')}"
        parts.append(part)
    return "&".join(parts)
