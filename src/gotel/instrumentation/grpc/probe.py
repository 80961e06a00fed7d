"""gRPC instrumentation (google.golang.org/grpc): hooks, fields, and the spans of its events."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from gotel.instrumentation.common import CONTEXT_FIELDS, GOROUTINE_FIELDS
from gotel.instrumentation.decode import split_host_port
from gotel.instrumentation.grpc.semconv import (
    CANCELLED,
    OK,
    SERVER_ERROR_CODES,
    UNKNOWN,
    code_name,
    method_attributes,
    target_address,
)
from gotel.instrumentation.metric import Metric, RedKey, key_text
from gotel.instrumentation.probe import Event, Hook, Probe, StructField, object_path
from gotel.trace import SpanData, SpanKind

MODULE = "google.golang.org/grpc"
SCOPE = "gotel/google.golang.org/grpc"

_T = "google.golang.org/grpc/internal/transport"
_NET = "golang.org/x/net"
_GENPROTO = "google.golang.org/genproto/googleapis/rpc"

# Values of the enums in events.h (tests check them against the object's BTF).
STREAM_PLAIN = 1  # GRPC_STREAM_PLAIN
STREAM_EMBED_PTR = 2  # GRPC_STREAM_EMBED_PTR
STREAM_EMBED_VALUE = 3  # GRPC_STREAM_EMBED_VALUE
FRAME_ARG_2 = 2  # GRPC_FRAME_ARG_2
FRAME_ARG_4 = 4  # GRPC_FRAME_ARG_4
STATUS_NONE = 0  # GRPC_STATUS_NONE
STATUS_OK = 1  # GRPC_STATUS_OK
STATUS_READ = 2  # GRPC_STATUS_READ
STATUS_NOT_STATUS = 3  # GRPC_STATUS_NOT_STATUS
CALL_UNARY = 0  # GRPC_CALL_UNARY
CALL_STREAM = 1  # GRPC_CALL_STREAM
SERVER_HTTP2_TRANSPORT = 0x100  # red_key.outcome bit (server_metrics.h)

SERVER_FIELDS = (
    *GOROUTINE_FIELDS,
    *CONTEXT_FIELDS,
    StructField(f"{_T}.Stream", "id", "off_stream_id", MODULE),
    StructField(f"{_T}.Stream", "ctx", "off_stream_ctx", MODULE),
    StructField(f"{_T}.Stream", "method", "off_stream_method", MODULE),
    # 1.69 split the server's stream into ServerStream{*Stream}; 1.77 embeds Stream by value.
    StructField(f"{_T}.ServerStream", "Stream", "off_server_stream_stream", MODULE, False),
    StructField(f"{_T}.ServerStream", "st", "off_server_stream_st", MODULE, False),
    # 1.60 moved http2Server.ctx into operateHeaders' arguments and the addresses into a Peer.
    StructField(f"{_T}.http2Server", "ctx", "off_h2s_ctx", MODULE, False),
    StructField(f"{_T}.http2Server", "peer", "off_h2s_peer", MODULE, False),
    StructField(f"{_T}.http2Server", "remoteAddr", "off_h2s_remote_addr", MODULE, False),
    StructField(f"{_T}.http2Server", "localAddr", "off_h2s_local_addr", MODULE, False),
    StructField("google.golang.org/grpc/peer.Peer", "Addr", "off_peer_addr", MODULE, False),
    StructField(
        "google.golang.org/grpc/peer.Peer", "LocalAddr", "off_peer_local_addr", MODULE, False
    ),
    StructField("net.TCPAddr", "IP", "off_tcp_addr_ip", required=False),
    StructField("net.TCPAddr", "Port", "off_tcp_addr_port", required=False),
    StructField(
        "golang.org/x/net/http2.MetaHeadersFrame", "HeadersFrame", "off_meta_frame_headers", _NET
    ),
    StructField("golang.org/x/net/http2.MetaHeadersFrame", "Fields", "off_meta_frame_fields", _NET),
    StructField(
        "golang.org/x/net/http2.HeadersFrame", "FrameHeader", "off_headers_frame_header", _NET
    ),
    StructField(
        "golang.org/x/net/http2.FrameHeader", "StreamID", "off_frame_header_stream_id", _NET
    ),
    StructField("golang.org/x/net/http2/hpack.HeaderField", "Name", "off_header_field_name", _NET),
    StructField(
        "golang.org/x/net/http2/hpack.HeaderField", "Value", "off_header_field_value", _NET
    ),
    # The trailer writeStatus queues: a headerFrame until 1.82.1, then a serverHeaders.
    StructField(f"{_T}.headerFrame", "hf", "off_header_frame_hf", MODULE, False),
    StructField(f"{_T}.serverHeaders", "hf", "off_server_headers_hf", MODULE, False),
)


def _server_features(offsets: Mapping[str, int]) -> dict[str, int]:
    features = {}
    # Where operateHeaders finds its frame: after the ctx argument that replaced the field.
    if "off_h2s_peer" in offsets:
        features["frame_arg"] = FRAME_ARG_4
    elif "off_h2s_ctx" in offsets:
        features["frame_arg"] = FRAME_ARG_2
    embed, st = offsets.get("off_server_stream_stream"), offsets.get("off_server_stream_st")
    if embed is None:
        features["server_stream_layout"] = STREAM_PLAIN
    elif st is not None:
        # The field after the embedded Stream starts 8 bytes on only when Stream is a pointer.
        pointer = st - embed == 8
        features["server_stream_layout"] = STREAM_EMBED_PTR if pointer else STREAM_EMBED_VALUE
    return features


def _ip(raw: bytes, length: int) -> str | None:
    if length == 4:
        return str(ipaddress.IPv4Address(raw[:4]))
    if length == 16:
        addr = ipaddress.IPv6Address(raw[:16])
        return str(addr.ipv4_mapped or addr)
    return None


def server_span(event: Event) -> SpanData:
    name, attrs = method_attributes(event["method"])
    source = event["status_source"]
    code: int | None = None
    if source == STATUS_READ:
        code = event["status_code"]
    elif event["http2_transport"]:
        # grpc's transport writes every status it is given, unless the stream is already
        # gone: the client reset it or the connection closed first.
        code = CANCELLED
    if code is not None:  # None: served through ServeHTTP, whose status gotel does not read
        attrs["rpc.grpc.status_code"] = code

    host, port = split_host_port(event["authority"])
    local = _ip(event["local_ip"], event["local_ip_len"])
    if not host and local:  # no :authority: the address the connection reached
        host, port = local, event["local_port"] or None
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port
    peer = _ip(event["peer_ip"], event["peer_ip_len"])
    if peer:
        attrs["network.peer.address"] = peer
        if event["peer_port"]:
            attrs["network.peer.port"] = event["peer_port"]

    message = ""
    if code is not None and code in SERVER_ERROR_CODES:
        message = attrs["error.type"] = code_name(code)
    return SpanData(name, SpanKind.SERVER, attrs, bool(message), message)


def server_metric_attributes(key: RedKey) -> dict[str, object]:
    """rpc.server.duration's attributes: rpc.system/service/method, status code, error.type."""
    _, attrs = method_attributes(key_text(key["name"]))
    out: dict[str, object] = dict(attrs)
    source = key["outcome"] & 0xFF
    code: int | None = None
    if source == STATUS_READ:
        code = key["code"]
    elif key["outcome"] & SERVER_HTTP2_TRANSPORT:
        code = CANCELLED  # as on the span: the stream was gone before its status
    if code is not None:
        out["rpc.grpc.status_code"] = code
        if code in SERVER_ERROR_CODES:
            out["error.type"] = code_name(code)
    return out


SERVER_METRIC = Metric(
    "rpc.server.duration", "Duration of inbound RPCs.", server_metric_attributes
)


SERVER = Probe(
    name="grpc server",
    module=MODULE,
    bpf_object=object_path(__file__, "server.bpf.o"),
    hooks=(
        Hook(
            "google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders",
            entry="operate_headers_entry",
        ),
        Hook(
            "google.golang.org/grpc.(*Server).handleStream",
            entry="handle_stream_entry",
            returns="handle_stream_return",
        ),
        Hook(
            "google.golang.org/grpc/internal/transport.(*http2Server).finishStream",
            entry="finish_stream_entry",
        ),
    ),
    fields=SERVER_FIELDS,
    event="grpc_server_event",
    describe=server_span,
    scope=SCOPE,
    features=_server_features,
    context_in="traceparent metadata (read-only, from the HEADERS frame fields)",
    metric=SERVER_METRIC,
)

CLIENT_FIELDS = (
    *GOROUTINE_FIELDS,
    *CONTEXT_FIELDS,
    StructField("google.golang.org/grpc.ClientConn", "authority", "off_cc_authority", MODULE),
    StructField("google.golang.org/grpc.ClientConn", "target", "off_cc_target", MODULE),
    StructField(
        "google.golang.org/grpc/internal/status.Error", "s", "off_status_error_s", MODULE
    ),
    StructField("google.golang.org/grpc/internal/status.Status", "s", "off_status_s", MODULE),
    StructField(
        "google.golang.org/genproto/googleapis/rpc/status.Status",
        "Code",
        "off_status_proto_code",
        _GENPROTO,
    ),
    StructField(
        "google.golang.org/genproto/googleapis/rpc/status.Status",
        "Message",
        "off_status_proto_message",
        _GENPROTO,
    ),
    StructField("errors.errorString", "s", "off_error_string_s"),
    StructField(f"{_T}.loopyWriter", "side", "off_loopy_side", MODULE, False),
    # writeHeader's fields: a request with its own traceparent is left as it is.
    StructField(
        "golang.org/x/net/http2/hpack.HeaderField", "Name", "off_header_field_name", _NET, False
    ),
)


def client_span(event: Event) -> SpanData:
    name, attrs = method_attributes(event["method"])
    source = event["status_source"]
    if source == STATUS_OK:
        code = OK
    elif source == STATUS_READ:
        code = event["status_code"]
    else:  # an error that carries no gRPC status: grpc's status.Code says Unknown
        code = UNKNOWN
    attrs["rpc.grpc.status_code"] = code
    host, port = target_address(event["target"])
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port

    error = code != OK
    message = ""
    if error:
        attrs["error.type"] = code_name(code) if source == STATUS_READ else "_OTHER"
        message = event["message"] or code_name(code)
    return SpanData(name, SpanKind.CLIENT, attrs, error, message)


def client_metric_attributes(key: RedKey) -> dict[str, object]:
    """rpc.client.duration's attributes: rpc.*, status code, server address/port, error.type."""
    _, attrs = method_attributes(key_text(key["name"]))
    out: dict[str, object] = dict(attrs)
    source = key["outcome"]
    code = OK if source == STATUS_OK else key["code"] if source == STATUS_READ else UNKNOWN
    out["rpc.grpc.status_code"] = code
    host, port = target_address(key_text(key["address"]))
    if host:
        out["server.address"] = host
    if port:
        out["server.port"] = port
    if code != OK:
        out["error.type"] = code_name(code) if source == STATUS_READ else "_OTHER"
    return out


CLIENT_METRIC = Metric(
    "rpc.client.duration", "Duration of outbound RPCs.", client_metric_attributes
)


CLIENT = Probe(
    name="grpc client",
    module=MODULE,
    bpf_object=object_path(__file__, "client.bpf.o"),
    hooks=(
        Hook(
            "google.golang.org/grpc.(*ClientConn).Invoke",
            entry="invoke_entry",
            returns="invoke_return",
        ),
        Hook(
            "google.golang.org/grpc.(*ClientConn).NewStream",
            entry="new_stream_entry",
            returns="new_stream_return",
        ),
        Hook("google.golang.org/grpc.(*clientStream).newAttemptLocked", entry="new_attempt_entry"),
        Hook("google.golang.org/grpc.(*clientStream).finish", entry="stream_finish_entry"),
        Hook(
            "google.golang.org/grpc/internal/transport.(*http2Client).createHeaderFields",
            returns="create_header_fields_return",
        ),
        Hook(
            "google.golang.org/grpc/internal/transport.(*loopyWriter).writeHeader",
            entry="write_header_entry",
        ),
    ),
    fields=CLIENT_FIELDS,
    event="grpc_client_event",
    describe=client_span,
    scope=SCOPE,
    context_out="traceparent appended to each new stream's HEADERS frame at the socket layer"
    " (cleartext HTTP/2)",
    metric=CLIENT_METRIC,
)

PROBES = (SERVER, CLIENT)
