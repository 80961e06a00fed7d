"""OTLP exporter settings from the OTEL_EXPORTER_OTLP_* environment, read as the specification says.

The signal-specific variable (..._TRACES_..., ..._METRICS_...) wins over the generic one.
Every bad value is a GotelError naming the variable, raised before anything is attached.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from gotel.errors import GotelError
from gotel.trace import env as names

logger = logging.getLogger(__name__)

PROTOCOL_HTTP = "http/protobuf"
PROTOCOL_GRPC = "grpc"
DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
TRACES = "traces"
METRICS = "metrics"
SIGNAL_PATHS = {TRACES: "/v1/traces", METRICS: "/v1/metrics"}
TRACES_PATH = SIGNAL_PATHS[TRACES]
_SUSPICIOUS_TIMEOUT_MS = 100  # below this, the value was probably meant as seconds

COMPRESSION_GZIP = "gzip"
COMPRESSION_NONE = "none"
COMPRESSION_ADAPTIVE = "adaptive"  # unset: gzip only while export falls behind


@dataclass(frozen=True)
class OtlpSettings:
    protocol: str
    endpoint: str  # http/protobuf: the full URL; grpc: the URL whose host:port is dialled
    timeout_s: float
    compression: str  # gzip | none | adaptive
    headers: dict[str, str] = field(default_factory=dict)
    insecure: bool = False  # grpc without TLS
    certificate: str | None = None  # CA bundle for the collector's certificate
    client_key: str | None = None
    client_certificate: str | None = None

    @property
    def tls(self) -> bool:
        if self.protocol == PROTOCOL_GRPC:
            return not self.insecure
        return urlsplit(self.endpoint).scheme == "https"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.certificate)
            if self.client_certificate:
                context.load_cert_chain(self.client_certificate, self.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise GotelError(f"otlp exporter: tls setup failed: {exc}") from exc
        return context


def signal_variable(generic: str, signal: str) -> str:
    """OTEL_EXPORTER_OTLP_PROTOCOL -> OTEL_EXPORTER_OTLP_METRICS_PROTOCOL for signal "metrics"."""
    prefix = "OTEL_EXPORTER_OTLP_"
    return f"{prefix}{signal.upper()}_{generic.removeprefix(prefix)}"


def _first(environ: Mapping[str, str], *variables: str) -> tuple[str, str] | None:
    for name in variables:
        raw = environ.get(name, "").strip()
        if raw:
            return name, raw
    return None


def resolve_protocol(environ: Mapping[str, str], signal: str = TRACES) -> str:
    """http/protobuf (the default) or grpc."""
    found = _first(
        environ,
        signal_variable(names.OTEL_EXPORTER_OTLP_PROTOCOL, signal),
        names.OTEL_EXPORTER_OTLP_PROTOCOL,
    )
    if found is None:
        return PROTOCOL_HTTP
    name, raw = found
    if raw.lower() not in (PROTOCOL_HTTP, PROTOCOL_GRPC):
        raise GotelError(f"{name}={raw!r}: protocol not supported (use http/protobuf or grpc)")
    return raw.lower()


def resolve_timeout_s(environ: Mapping[str, str], signal: str = TRACES) -> float:
    """The export timeout in seconds, read as milliseconds as the specification says."""
    found = _first(
        environ,
        signal_variable(names.OTEL_EXPORTER_OTLP_TIMEOUT, signal),
        names.OTEL_EXPORTER_OTLP_TIMEOUT,
    )
    if found is None:
        return DEFAULT_TIMEOUT_MS / 1000.0
    name, raw = found
    try:
        millis = float(raw)
    except ValueError:
        millis = -1.0
    if not millis > 0:
        raise GotelError(f"{name}={raw!r}: expected a positive number of milliseconds")
    if millis < _SUSPICIOUS_TIMEOUT_MS:
        logger.warning(
            "%s=%s is read as milliseconds, as the OpenTelemetry specification says "
            "(for %s seconds write %d)",
            name,
            raw,
            raw,
            int(millis * 1000),
        )
    return millis / 1000.0


def resolve_compression(environ: Mapping[str, str], signal: str = TRACES) -> str:
    """gzip or none when set; unset, gotel compresses only while export falls behind."""
    found = _first(
        environ,
        signal_variable(names.OTEL_EXPORTER_OTLP_COMPRESSION, signal),
        names.OTEL_EXPORTER_OTLP_COMPRESSION,
    )
    if found is None:
        return COMPRESSION_ADAPTIVE
    name, raw = found
    if raw.lower() not in (COMPRESSION_GZIP, COMPRESSION_NONE):
        raise GotelError(f"{name}={raw!r}: expected gzip or none")
    return raw.lower()


def resolve_endpoint(environ: Mapping[str, str], protocol: str, signal: str = TRACES) -> str:
    """The signal's endpoint: its own variable as given; the generic one + /v1/<signal> (HTTP)."""
    own_name = signal_variable(names.OTEL_EXPORTER_OTLP_ENDPOINT, signal)
    own = environ.get(own_name, "").strip()
    generic = environ.get(names.OTEL_EXPORTER_OTLP_ENDPOINT, "").strip()
    if protocol == PROTOCOL_GRPC:
        name, url = (
            (own_name, own)
            if own
            else (names.OTEL_EXPORTER_OTLP_ENDPOINT, generic or DEFAULT_GRPC_ENDPOINT)
        )
        if "://" not in url:
            url = "https://" + url  # the specification's default for a bare host:port
    elif own:
        name, url = own_name, own
    else:
        name = names.OTEL_EXPORTER_OTLP_ENDPOINT
        url = (generic or DEFAULT_HTTP_ENDPOINT).rstrip("/") + SIGNAL_PATHS[signal]
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise GotelError(f"{name}={url!r}: expected http(s)://host[:port][/path]")
    return url


def parse_headers(raw: str, variable: str) -> dict[str, str]:
    """`key1=value1,key2=value2`, values percent-decoded (W3C baggage style)."""
    headers: dict[str, str] = {}
    for entry in raw.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = unquote(key.strip())
        if not sep or not key or any(c in key for c in " \t\r\n:"):
            raise GotelError(f"{variable}: malformed entry {entry.strip()[:60]!r} (key=value)")
        value = unquote(value.strip())
        if any(c in value for c in "\r\n"):
            raise GotelError(f"{variable}: header {key!r} has a line break in its value")
        headers[key.lower()] = value
    return headers


def _flag(environ: Mapping[str, str], *variables: str) -> bool:
    found = _first(environ, *variables)
    if found is None:
        return False
    name, raw = found
    if raw.lower() not in ("true", "false"):
        raise GotelError(f"{name}={raw!r}: expected true or false")
    return raw.lower() == "true"


def _file(environ: Mapping[str, str], *variables: str) -> str | None:
    found = _first(environ, *variables)
    return found[1] if found else None


def resolve_settings(environ: Mapping[str, str], signal: str = TRACES) -> OtlpSettings:
    protocol = resolve_protocol(environ, signal)
    endpoint = resolve_endpoint(environ, protocol, signal)
    headers: dict[str, str] = {}
    for variable in (
        names.OTEL_EXPORTER_OTLP_HEADERS,
        signal_variable(names.OTEL_EXPORTER_OTLP_HEADERS, signal),
    ):
        headers.update(parse_headers(environ.get(variable, ""), variable))
    insecure = False
    if protocol == PROTOCOL_GRPC:
        scheme = urlsplit(endpoint).scheme
        explicit = (
            environ.get(signal_variable(names.OTEL_EXPORTER_OTLP_ENDPOINT, signal))
            or environ.get(names.OTEL_EXPORTER_OTLP_ENDPOINT)
            or ""
        )
        if "://" in explicit or not explicit:
            insecure = scheme == "http"
        else:  # bare host:port: OTEL_EXPORTER_OTLP_INSECURE decides
            insecure = _flag(
                environ,
                signal_variable(names.OTEL_EXPORTER_OTLP_INSECURE, signal),
                names.OTEL_EXPORTER_OTLP_INSECURE,
            )
    return OtlpSettings(
        protocol=protocol,
        endpoint=endpoint,
        timeout_s=resolve_timeout_s(environ, signal),
        compression=resolve_compression(environ, signal),
        headers=headers,
        insecure=insecure,
        certificate=_file(
            environ,
            signal_variable(names.OTEL_EXPORTER_OTLP_CERTIFICATE, signal),
            names.OTEL_EXPORTER_OTLP_CERTIFICATE,
        ),
        client_key=_file(
            environ,
            signal_variable(names.OTEL_EXPORTER_OTLP_CLIENT_KEY, signal),
            names.OTEL_EXPORTER_OTLP_CLIENT_KEY,
        ),
        client_certificate=_file(
            environ,
            signal_variable(names.OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, signal),
            names.OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE,
        ),
    )
