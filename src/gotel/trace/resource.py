"""The OpenTelemetry resource describing the instrumented Go process (not gotel itself)."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from urllib.parse import unquote

import gotel
from gotel.trace.env import OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME

logger = logging.getLogger(__name__)

ResourceValue = str | int

SERVICE_NAME = "service.name"
UNKNOWN_SERVICE = "unknown_service"

# A '%' must start a two-hex-digit escape; unquote() would silently keep a bad one.
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _percent_decode(text: str) -> str:
    if _BAD_PERCENT.search(text):
        raise ValueError("bad percent escape")
    # errors="strict": escapes that are not UTF-8 make the entry malformed instead of U+FFFD.
    return unquote(text, errors="strict")


def parse_resource_attributes(raw: str) -> tuple[dict[str, str], list[str]]:
    """Parse OTEL_RESOURCE_ATTRIBUTES (`key=value,key2=value2`, W3C-baggage style encoding).

    Returns the attributes and the malformed entries, which are skipped rather than discarding
    the whole variable, so one typo does not lose every other attribute.
    """
    attributes: dict[str, str] = {}
    malformed: list[str] = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue  # tolerate "a=1,,b=2" and a trailing comma
        key, sep, value = entry.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            malformed.append(entry)
            continue
        try:
            attributes[_percent_decode(key)] = _percent_decode(value)
        except ValueError:  # includes UnicodeDecodeError
            malformed.append(entry)
    return attributes, malformed


def build_resource(
    *,
    executable: str,
    pid: int,
    go_version: str | None,
    service_name: str | None = None,
    extra: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, ResourceValue]:
    """Resource attributes for the target process.

    Precedence, lowest first: detected attributes < OTEL_RESOURCE_ATTRIBUTES < `extra`.
    service.name: `service_name` > OTEL_SERVICE_NAME > `extra` > OTEL_RESOURCE_ATTRIBUTES >
    the target executable's base name; never the agent's own name (a mistake of earlier tools).
    `environ` defaults to gotel's environment; passing the target's lets a supervisor honour
    per-process settings.
    """
    env = os.environ if environ is None else environ
    extra = extra or {}
    exe_name = os.path.basename(executable)

    resource: dict[str, ResourceValue] = {
        "process.pid": pid,
        "process.executable.name": exe_name,
        "process.executable.path": executable,
        "process.runtime.name": "go",
        # telemetry.sdk.*: the spans describe a Go program, and backends key language-specific
        # views on telemetry.sdk.language, so we report "go" as opentelemetry-go-instrumentation
        # does. telemetry.sdk.name/version are left unset: we are not the OpenTelemetry Go SDK
        # (and "opentelemetry" is reserved for it); telemetry.distro.* names gotel instead.
        "telemetry.sdk.language": "go",
        "telemetry.distro.name": "gotel",
        "telemetry.distro.version": gotel.__version__,
        "host.name": socket.gethostname(),
    }
    if go_version:
        # As the Go SDK's runtime detector reports it: runtime.Version(), e.g. "go1.26.8".
        resource["process.runtime.version"] = go_version

    env_attributes, malformed = parse_resource_attributes(env.get(OTEL_RESOURCE_ATTRIBUTES, ""))
    if malformed:
        logger.warning(
            "%s: ignored %d malformed entr%s (expected key=value, percent-encoded): %s",
            OTEL_RESOURCE_ATTRIBUTES,
            len(malformed),
            "y" if len(malformed) == 1 else "ies",
            ", ".join(repr(m[:80]) for m in malformed),
        )
    resource.update(env_attributes)
    resource.update(extra)

    candidates = (
        service_name,
        env.get(OTEL_SERVICE_NAME, "").strip(),
        extra.get(SERVICE_NAME),
        env_attributes.get(SERVICE_NAME),
        exe_name,
    )
    resource[SERVICE_NAME] = next((c for c in candidates if c), UNKNOWN_SERVICE)
    return resource
