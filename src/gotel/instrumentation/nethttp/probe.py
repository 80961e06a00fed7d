"""net/http instrumentation: which functions and fields the BPF programs need, and their spans."""

from __future__ import annotations

from collections.abc import Mapping

from gotel.instrumentation.common import CONTEXT_FIELDS, GOROUTINE_FIELDS
from gotel.instrumentation.decode import split_host_port
from gotel.instrumentation.events import truncated
from gotel.instrumentation.metric import Metric, RedKey, key_text
from gotel.instrumentation.nethttp.semconv import (
    DEFAULT_PORTS,
    method_attributes,
    protocol_version,
    redact_query,
    route_from_pattern,
)
from gotel.instrumentation.probe import STD, Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData, SpanKind

SCOPE = "gotel/net/http"
XNET = "golang.org/x/net"
XNET_HTTP2 = f"{XNET}/http2"

# Values of `enum http_route_source` in events.h and `enum header_map_layout` in header_map.h.
_ROUTE_PATTERN_FIELD = 1
_ROUTE_PAT_POINTER = 2
_HEADER_MAP_BUCKETS = 1
_HEADER_MAP_SWISS = 2
# red_key.outcome bits (server_metrics.h, client_metrics.h).
_SERVER_TLS = 1
_CLIENT_FAILED = 1
_CLIENT_HTTPS = 2

# Where the server finds an incoming traceparent: the request's header map, whose
# layout changed in Go 1.24 (Swiss tables). Whichever layout the binary has resolves.
_HMAP = "runtime.hmap"
_SWISS = "internal/runtime/maps"
HEADER_MAP_FIELDS = (
    StructField(_HMAP, "B", "off_hmap_b", required=False),
    StructField(_HMAP, "buckets", "off_hmap_buckets", required=False),
    StructField(_HMAP, "oldbuckets", "off_hmap_oldbuckets", required=False),
    StructField(f"{_SWISS}.Map", "dirPtr", "off_swiss_dir_ptr", required=False),
    StructField(f"{_SWISS}.Map", "dirLen", "off_swiss_dir_len", required=False),
    StructField(f"{_SWISS}.table", "groups", "off_swiss_table_groups", required=False),
    StructField(f"{_SWISS}.groupsReference", "data", "off_swiss_groups_data", required=False),
    StructField(
        f"{_SWISS}.groupsReference", "lengthMask", "off_swiss_groups_mask", required=False
    ),
)

SERVER_FIELDS = (
    *GOROUTINE_FIELDS,
    *CONTEXT_FIELDS,
    *HEADER_MAP_FIELDS,
    StructField("net/http.Request", "Header", "off_request_header", required=False),
    StructField("net/http.Request", "ctx", "off_request_ctx", required=False),
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
    # The same for golang.org/x/net/http2's server (h2c.NewHandler).
    StructField(f"{XNET_HTTP2}.responseWriter", "rws", "off_xh2_writer_rws", XNET, False),
    StructField(f"{XNET_HTTP2}.responseWriterState", "req", "off_xh2_state_req", XNET, False),
    StructField(
        f"{XNET_HTTP2}.responseWriterState", "status", "off_xh2_state_status", XNET, False
    ),
)


def _has(offsets: Mapping[str, int], fields: tuple[StructField, ...], prefix: str) -> bool:
    return all(f.const in offsets for f in fields if f.struct.startswith(prefix))


def _header_map_features(offsets: Mapping[str, int]) -> dict[str, int]:
    features = {}
    if "off_request_header" in offsets:
        if _has(offsets, HEADER_MAP_FIELDS, _SWISS):
            features["header_map_layout"] = _HEADER_MAP_SWISS
        elif _has(offsets, HEADER_MAP_FIELDS, _HMAP):
            features["header_map_layout"] = _HEADER_MAP_BUCKETS
    return features


def _server_features(offsets: Mapping[str, int]) -> dict[str, int]:
    features = _header_map_features(offsets)
    if "off_request_pattern" in offsets:
        features["route_source"] = _ROUTE_PATTERN_FIELD
    elif "off_request_pat" in offsets and "off_pattern_str" in offsets:
        features["route_source"] = _ROUTE_PAT_POINTER
    return features


def server_span(event: Event) -> SpanData:
    method, attrs = method_attributes(event["method"])
    cut = []
    attrs["url.path"] = event["path"]
    if truncated(event, "path"):
        cut.append("url.path")
    query = event["query"]
    if query:
        attrs["url.query"] = query
        if truncated(event, "query"):
            cut.append("url.query")
    attrs["url.scheme"] = "https" if event["tls"] else "http"

    route = route_from_pattern(event["route"])
    if route:
        attrs["http.route"] = route

    status = event["status"] or 200  # no WriteHeader: Go sends 200
    attrs["http.response.status_code"] = status

    host, port = split_host_port(event["host"])
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port
    peer, peer_port = split_host_port(event["remote_addr"])
    if peer:
        attrs["network.peer.address"] = peer
        attrs["client.address"] = peer
    if peer_port:
        attrs["network.peer.port"] = peer_port
    version = protocol_version(event["proto_major"], event["proto_minor"])
    if version:
        attrs["network.protocol.version"] = version
    if cut:
        attrs["gotel.truncated"] = ",".join(cut)

    error = status >= 500
    if error:
        attrs["error.type"] = str(status)
    return SpanData(f"{method} {route}" if route else method, SpanKind.SERVER, attrs, error)


def server_metric_attributes(key: RedKey) -> dict[str, object]:
    """http.server.request.duration's attributes: method, route (never the path), status."""
    _, attrs = method_attributes(key_text(key["word"]))
    attrs.pop("http.request.method_original", None)  # unbounded: any token a client sends
    route = route_from_pattern(key_text(key["name"]))
    if route:
        attrs["http.route"] = route
    status = key["code"] or 200  # no WriteHeader: Go sends 200
    out: dict[str, object] = {**attrs, "http.response.status_code": status}
    out["url.scheme"] = "https" if key["outcome"] & _SERVER_TLS else "http"
    if status >= 500:
        out["error.type"] = str(status)
    return out


SERVER_METRIC = Metric(
    "http.server.request.duration",
    "Duration of HTTP server requests.",
    server_metric_attributes,
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
        # HTTP/2 served by golang.org/x/net/http2 (h2c.NewHandler) bypasses serverHandler.
        Hook(
            f"{XNET_HTTP2}.(*serverConn).runHandler",
            entry="run_handler_entry",
            returns="serve_http_return",
            optional=True,
        ),
    ),
    fields=SERVER_FIELDS,
    event="http_server_event",
    describe=server_span,
    scope=SCOPE,
    features=_server_features,
    context_in="traceparent request header (read-only, from the header map)",
    metric=SERVER_METRIC,
)

CLIENT_FIELDS = (
    *GOROUTINE_FIELDS,
    *CONTEXT_FIELDS,
    *HEADER_MAP_FIELDS,
    StructField("net/http.Request", "Header", "off_request_header", required=False),
    StructField("net/http.Request", "ctx", "off_request_ctx", required=False),
    StructField("net/http.Request", "Method", "off_request_method"),
    StructField("net/http.Request", "URL", "off_request_url"),
    StructField("net/url.URL", "Scheme", "off_url_scheme"),
    StructField("net/url.URL", "Host", "off_url_host"),
    StructField("net/url.URL", "Path", "off_url_path"),
    StructField("net/url.URL", "RawQuery", "off_url_raw_query"),
    StructField("net/url.URL", "User", "off_url_user"),
    StructField("net/http.Response", "StatusCode", "off_response_status_code"),
    StructField("net/http.Response", "ProtoMajor", "off_response_proto_major"),
    StructField("net/http.Response", "ProtoMinor", "off_response_proto_minor"),
)


def client_span(event: Event) -> SpanData:
    method, attrs = method_attributes(event["method"])
    scheme = event["scheme"] or "http"
    hostport = event["host"]
    path, query = event["path"], event["query"]
    # Built from parts: userinfo never reaches url.full, secret query values are redacted.
    attrs["url.full"] = f"{scheme}://{hostport}{path}" + (
        f"?{redact_query(query)}" if query else ""
    )
    if truncated(event, "path") or truncated(event, "query"):
        attrs["gotel.truncated"] = "url.full"
    host, port = split_host_port(hostport)
    if host:
        attrs["server.address"] = host
    port = port or DEFAULT_PORTS.get(scheme)
    if port:
        attrs["server.port"] = port
    status = event["status"]
    if status:
        attrs["http.response.status_code"] = status
    version = protocol_version(event["proto_major"], event["proto_minor"])
    if version:
        attrs["network.protocol.version"] = version
    error = False
    if event["error_type"]:
        error = True
        attrs["error.type"] = "_OTHER"  # a transport error; its Go type is not resolved yet
    elif status >= 400:
        error = True
        attrs["error.type"] = str(status)
    return SpanData(method, SpanKind.CLIENT, attrs, error)


def client_metric_attributes(key: RedKey) -> dict[str, object]:
    """http.client.request.duration's attributes: method, server address/port, status."""
    _, attrs = method_attributes(key_text(key["word"]))
    attrs.pop("http.request.method_original", None)
    out: dict[str, object] = dict(attrs)
    scheme = "https" if key["outcome"] & _CLIENT_HTTPS else "http"
    host, port = split_host_port(key_text(key["address"]))
    if host:
        out["server.address"] = host
    port = port or DEFAULT_PORTS.get(scheme)
    if port:
        out["server.port"] = port
    status = key["code"]
    if status:
        out["http.response.status_code"] = status
    if key["outcome"] & _CLIENT_FAILED:
        out["error.type"] = "_OTHER"  # a transport error, as on the span
    elif status >= 400:
        out["error.type"] = str(status)
    return out


CLIENT_METRIC = Metric(
    "http.client.request.duration",
    "Duration of HTTP client requests.",
    client_metric_attributes,
)


CLIENT = Probe(
    name="net/http client",
    module=STD,
    bpf_object=object_path(__file__, "client.bpf.o"),
    hooks=(
        Hook(
            "net/http.(*Transport).roundTrip",
            entry="round_trip_entry",
            returns="round_trip_return",
        ),
        Hook("net/http.(*Request).write", entry="request_write_entry"),
        # The HEADERS frame of each HTTP/2 stream, for the injector (h2c).
        Hook(
            "net/http.(*http2ClientConn).writeHeaders",
            entry="write_headers_entry",
            optional=True,
        ),
    ),
    fields=CLIENT_FIELDS,
    event="http_client_event",
    describe=client_span,
    scope=SCOPE,
    features=_header_map_features,
    context_out=(
        "traceparent inserted at the socket layer: after the request line (HTTP/1), as a "
        "header field of the HEADERS frame (h2c); not over TLS (https://): writing into "
        "encrypted traffic needs bpf_probe_write_user, which kernel lockdown forbids, so "
        "those requests go out unchanged and are counted as tls"
    ),
    metric=CLIENT_METRIC,
)

PROBES = (SERVER, CLIENT)
