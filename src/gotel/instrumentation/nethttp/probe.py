"""net/http instrumentation: which functions and fields the BPF programs need, and their spans."""

from __future__ import annotations

from collections.abc import Mapping

from gotel.instrumentation.decode import split_host_port, text
from gotel.instrumentation.nethttp.semconv import (
    method_attributes,
    protocol_version,
    route_from_pattern,
)
from gotel.instrumentation.probe import STD, Event, Hook, Probe, StructField, object_path
from gotel.trace import BootClock, Span, SpanKind

# Values of `enum http_route_source` in events.h.
_ROUTE_PATTERN_FIELD = 1
_ROUTE_PAT_POINTER = 2

SERVER_FIELDS = (
    StructField("net/http.Request", "Method", "off_request_method"),
    StructField("net/http.Request", "URL", "off_request_url"),
    StructField("net/url.URL", "Path", "off_url_path"),
    StructField("net/url.URL", "RawQuery", "off_url_raw_query"),
    StructField("net/http.Request", "Host", "off_request_host"),
    StructField("net/http.Request", "RemoteAddr", "off_request_remote_addr"),
    StructField("net/http.Request", "ProtoMajor", "off_request_proto_major"),
    StructField("net/http.Request", "ProtoMinor", "off_request_proto_minor"),
    StructField("net/http.Request", "TLS", "off_request_tls"),
    StructField("net/http.response", "req", "off_response_req"),
    StructField("net/http.response", "status", "off_response_status"),
    # Route pattern: Go 1.23+ exports it; Go 1.22 keeps a pointer to the parsed pattern.
    StructField("net/http.Request", "Pattern", "off_request_pattern", required=False),
    StructField("net/http.Request", "pat", "off_request_pat", required=False),
    StructField("net/http.pattern", "str", "off_pattern_str", required=False),
    # HTTP/2 responses (h2c or TLS) keep the status in the writer's state.
    StructField("net/http.http2responseWriter", "rws", "off_h2_writer_rws", required=False),
    StructField("net/http.http2responseWriterState", "req", "off_h2_state_req", required=False),
    StructField(
        "net/http.http2responseWriterState", "status", "off_h2_state_status", required=False
    ),
)


def _server_features(offsets: Mapping[str, int]) -> dict[str, int]:
    if "off_request_pattern" in offsets:
        return {"route_source": _ROUTE_PATTERN_FIELD}
    if "off_request_pat" in offsets and "off_pattern_str" in offsets:
        return {"route_source": _ROUTE_PAT_POINTER}
    return {}


def server_span(event: Event, clock: BootClock) -> Span:
    method_raw, _ = text(event, "method")
    method, attrs = method_attributes(method_raw)
    truncated = []
    path, cut = text(event, "path")
    if cut:
        truncated.append("url.path")
    attrs["url.path"] = path
    query, cut = text(event, "query")
    if query:
        attrs["url.query"] = query
        if cut:
            truncated.append("url.query")
    attrs["url.scheme"] = "https" if event["tls"] else "http"

    pattern, _ = text(event, "route")
    route = route_from_pattern(pattern)
    if route:
        attrs["http.route"] = route

    status = int(event["status"]) or 200  # no WriteHeader: Go sends 200
    attrs["http.response.status_code"] = status

    host, port = split_host_port(text(event, "host")[0])
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port
    peer, peer_port = split_host_port(text(event, "remote_addr")[0])
    if peer:
        attrs["network.peer.address"] = peer
        attrs["client.address"] = peer
    if peer_port:
        attrs["network.peer.port"] = peer_port
    version = protocol_version(int(event["proto_major"]), int(event["proto_minor"]))
    if version:
        attrs["network.protocol.version"] = version
    if truncated:
        attrs["gotel.truncated"] = ",".join(truncated)

    error = status >= 500
    if error:
        attrs["error.type"] = str(status)
    parent = bytes(event["parent_span_id"])
    return Span(
        name=f"{method} {route}" if route else method,
        kind=SpanKind.SERVER,
        trace_id=bytes(event["trace_id"]),
        span_id=bytes(event["span_id"]),
        parent_span_id=parent if any(parent) else None,
        start_ns=clock.to_unix_ns(int(event["start_ns"])),
        end_ns=clock.to_unix_ns(int(event["end_ns"])),
        attributes=attrs,
        error=error,
        scope="gotel/net/http",
    )


SERVER = Probe(
    name="net/http server",
    module=STD,
    bpf_object=object_path(__file__, "server.bpf.o"),
    hooks=(
        Hook(
            "net/http.serverHandler.ServeHTTP",
            entry="serve_http_entry",
            returns="serve_http_return",
        ),
    ),
    fields=SERVER_FIELDS,
    event="http_server_event",
    to_span=server_span,
    features=_server_features,
)

PROBES = (SERVER,)
