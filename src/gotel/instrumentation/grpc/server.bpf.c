// SPDX-License-Identifier: GPL-2.0
/*
 * gRPC server spans (google.golang.org/grpc), one per RPC, unary or streaming:
 *
 *  - internal/transport.(*http2Server).operateHeaders, entry: the connection's
 *    reader goroutine has a new stream's HEADERS. Its traceparent, :authority
 *    and the connection's addresses are kept by (transport, stream id) for the
 *    handler, which runs on another goroutine;
 *  - (*Server).handleStream, entry and every RET: the handler goroutine, the
 *    span itself; findable by goroutine and by the stream's context meanwhile;
 *  - internal/transport.(*http2Server).finishStream, entry: the trailer fields
 *    writeStatus hands to the writer, whose grpc-status is the span's status.
 *    (finishStream's name and receiver stayed put across releases where
 *    writeStatus/WriteStatus did not.)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/traceparent.h"
#include "include/events.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

/* internal/transport.Stream, and where a ServerStream keeps it. */
volatile const __u64 off_stream_id = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_stream_ctx = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_stream_method = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_server_stream_stream = GOTEL_OFFSET_ABSENT; /* >= 1.69 */
/* Unread here: the loader compares it with the one above to pick the layout. */
volatile const __u64 off_server_stream_st = GOTEL_OFFSET_ABSENT;
volatile const enum grpc_stream_layout server_stream_layout = GRPC_STREAM_UNKNOWN;
/* internal/transport.http2Server: its addresses moved into a peer.Peer at 1.60. */
/* Unread here: present (< 1.60) means operateHeaders has no ctx argument (frame_arg). */
volatile const __u64 off_h2s_ctx = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_h2s_peer = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_peer_addr = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_peer_local_addr = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_h2s_remote_addr = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_h2s_local_addr = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_tcp_addr_ip = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_tcp_addr_port = GOTEL_OFFSET_ABSENT;
volatile const enum grpc_frame_arg frame_arg = GRPC_FRAME_ARG_UNKNOWN;
/* golang.org/x/net/http2: MetaHeadersFrame{*HeadersFrame{FrameHeader{StreamID}}, Fields}. */
volatile const __u64 off_meta_frame_headers = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_meta_frame_fields = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_headers_frame_header = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_frame_header_stream_id = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_header_field_name = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_header_field_value = GOTEL_OFFSET_ABSENT;
/* The trailer's fields: headerFrame.hf (< 1.82.1), serverHeaders.hf (>= 1.82.1). */
volatile const __u64 off_header_frame_hf = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_server_headers_hf = GOTEL_OFFSET_ABSENT;

/* hpack.HeaderField{Name, Value string; Sensitive bool}: 40 bytes by the Go ABI. */
#define HEADER_FIELD_SIZE 40
/* Pseudo-headers and grpc's own fields come first, then the metadata: a dozen in all. */
#define MAX_REQUEST_FIELDS 24
/* A trailer is [:status, content-type,] grpc-status, grpc-message, ... */
#define MAX_TRAILER_FIELDS 8
#define NAME_MAX 16
#define TRACEPARENT_READ (TRACEPARENT_LEN + 1)

static const char traceparent_name[] = "traceparent";
static const char authority_name[] = ":authority";
static const char grpc_status_name[] = "grpc-status";

/* A stream of one connection: HTTP/2 stream ids repeat across connections. */
struct stream_key {
	__u32 tgid; /* first, as in every per-process key (process.h) */
	__u32 _pad;
	__u64 transport; /* *http2Server */
	__u64 id;
};

/* What the reader goroutine saw of a new stream, for its handler goroutine. */
struct incoming_stream {
	struct span_context parent;
	__u32 has_parent;
	__u32 authority_len;
	__u32 peer_ip_len;
	__u32 peer_port;
	__u32 local_ip_len;
	__u32 local_port;
	__u8 peer_ip[GRPC_IP_SIZE];
	__u8 local_ip[GRPC_IP_SIZE];
	char authority[GRPC_AUTHORITY_SIZE];
};

/* An RPC being handled, keyed by its handler goroutine's id. */
struct server_rpc {
	__u64 start_ns;
	__u64 stream; /* the *ServerStream (*Stream before 1.69) handleStream got */
	__u64 ctx;    /* the stream context's data word */
	struct stream_key key;
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
	__u32 remote_parent;
	enum grpc_status_source status_source;
	__u32 status_code;
	__u32 _pad;
};

GOTEL_LRU_HASH(incoming_streams, struct stream_key, struct incoming_stream, 16384);

GOTEL_PROCESS_HASH(server_rpcs, struct server_rpc, 16384);

/* Room to assemble an incoming_stream off the 512-byte stack, which the header buffers use. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct incoming_stream);
} incoming_scratch SEC(".maps");

GOTEL_EVENT_TYPE(grpc_server_event);

static __always_inline __u32 read_u32(__u64 addr)
{
	__u32 v = 0;

	if (addr)
		bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

/* base+offset, or 0 when either is unknown: what a read through it must not follow. */
static __always_inline __u64 field_addr(__u64 base, __u64 offset)
{
	return base && offset != GOTEL_OFFSET_ABSENT ? base + offset : 0;
}

/* The transport.Stream holding id, ctx and method, wherever this release keeps it. */
static __always_inline __u64 stream_common(__u64 stream)
{
	switch (server_stream_layout) {
	case GRPC_STREAM_PLAIN:
		return stream;
	case GRPC_STREAM_EMBED_PTR:
		return read_ptr_field(stream, off_server_stream_stream);
	case GRPC_STREAM_EMBED_VALUE:
		return field_addr(stream, off_server_stream_stream);
	case GRPC_STREAM_UNKNOWN:
		break;
	}
	return 0;
}

/* The (ptr, len) header of the Go string at addr; 0 on success. */
static __always_inline int read_string_header(__u64 addr, struct go_string *s)
{
	return bpf_probe_read_user(s, sizeof(*s), (void *)addr);
}

/* Is the Go string s exactly name (len bytes, len < NAME_MAX)? */
static __always_inline int string_is(const struct go_string *s, const char *name, __u32 len)
{
	char buf[NAME_MAX] = {};

	if (s->len != len || !s->ptr || len >= NAME_MAX)
		return 0;
	if (bpf_probe_read_user(buf, len & (NAME_MAX - 1), (void *)s->ptr))
		return 0;
	for (int i = 0; i < NAME_MAX - 1 && i < len; i++)
		if (buf[i] != name[i])
			return 0;
	return 1;
}

static __always_inline void adopt_traceparent(__u64 field, struct incoming_stream *in)
{
	__u8 value[TRACEPARENT_READ] = {};
	struct go_string s = {};

	if (read_string_header(field + off_header_field_value, &s))
		return;
	/* Version 00 is exactly 55 bytes; later versions may append "-..." fields. */
	if (s.len < TRACEPARENT_LEN || !s.ptr)
		return;
	if (bpf_probe_read_user(value, s.len > TRACEPARENT_LEN ? TRACEPARENT_READ : TRACEPARENT_LEN,
				(void *)s.ptr))
		return;
	if (s.len > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != '-')
		return;
	in->has_parent = parse_traceparent(value, &in->parent) == 0;
}

/* The request's traceparent and :authority, from the decoded HEADERS fields. */
static __always_inline void scan_request_fields(__u64 frame, struct incoming_stream *in)
{
	__u64 fields = read_ptr_field(frame, off_meta_frame_fields);
	__u64 count = read_ptr_field(frame, off_meta_frame_fields + 8);
	struct go_string name;

	for (int i = 0; i < MAX_REQUEST_FIELDS && i < count && fields; i++) {
		__u64 field = fields + i * HEADER_FIELD_SIZE;

		if (read_string_header(field + off_header_field_name, &name))
			return;
		if (string_is(&name, traceparent_name, sizeof(traceparent_name) - 1))
			adopt_traceparent(field, in);
		else if (string_is(&name, authority_name, sizeof(authority_name) - 1))
			in->authority_len =
				read_go_string(field, off_header_field_value, in->authority);
	}
}

/* A net.Addr interface at iface holding a *net.TCPAddr: its IP bytes and port. */
static __always_inline void read_tcp_addr(__u64 iface, __u8 *ip, __u32 *ip_len, __u32 *port)
{
	__u64 addr = iface ? read_u64(iface + 8) : 0;
	__u64 ip_ptr, n, p;

	if (!addr || off_tcp_addr_ip == GOTEL_OFFSET_ABSENT)
		return;
	ip_ptr = read_u64(addr + off_tcp_addr_ip);
	n = read_u64(addr + off_tcp_addr_ip + 8);
	if (!ip_ptr || (n != 4 && n != GRPC_IP_SIZE))
		return; /* not a TCP address (a unix socket, say) */
	if (bpf_probe_read_user(ip, n == 4 ? 4 : GRPC_IP_SIZE, (void *)ip_ptr))
		return;
	*ip_len = n;
	p = read_ptr_field(addr, off_tcp_addr_port);
	*port = p < 65536 ? p : 0;
}

static __always_inline void read_addresses(__u64 transport, struct incoming_stream *in)
{
	__u64 remote, local, peer = field_addr(transport, off_h2s_peer);

	if (peer) {
		remote = field_addr(peer, off_peer_addr);
		local = field_addr(peer, off_peer_local_addr);
	} else {
		remote = field_addr(transport, off_h2s_remote_addr);
		local = field_addr(transport, off_h2s_local_addr);
	}
	read_tcp_addr(remote, in->peer_ip, &in->peer_ip_len, &in->peer_port);
	read_tcp_addr(local, in->local_ip, &in->local_ip_len, &in->local_port);
}

static __always_inline __u64 headers_frame(struct pt_regs *ctx)
{
	__u64 param2 = GO_PARAM2(ctx), param4 = GO_PARAM4(ctx);

	/* Load both first: the verifier rejects a context read through an adjusted pointer. */
	asm volatile("" : "+r"(param2), "+r"(param4));
	switch (frame_arg) {
	case GRPC_FRAME_ARG_2:
		return param2;
	case GRPC_FRAME_ARG_4:
		return param4;
	case GRPC_FRAME_ARG_UNKNOWN:
		break;
	}
	return 0;
}

SEC("uprobe")
int operate_headers_entry(struct pt_regs *ctx)
{
	__u64 transport = GO_PARAM1(ctx), frame = headers_frame(ctx), headers;
	struct stream_key key = {.tgid = current_tgid(), .transport = transport};
	struct incoming_stream *in;
	__u32 zero = 0;

	headers = read_ptr_field(frame, off_meta_frame_headers);
	if (!headers || off_headers_frame_header == GOTEL_OFFSET_ABSENT ||
	    off_frame_header_stream_id == GOTEL_OFFSET_ABSENT)
		return 0;
	key.id = read_u32(headers + off_headers_frame_header + off_frame_header_stream_id);
	in = bpf_map_lookup_elem(&incoming_scratch, &zero);
	if (!key.id || !in)
		return 0;
	__builtin_memset(in, 0, sizeof(*in));
	scan_request_fields(frame, in);
	read_addresses(transport, in);
	bpf_map_update_elem(&incoming_streams, &key, in, BPF_ANY);
	return 0;
}

SEC("uprobe")
int handle_stream_entry(struct pt_regs *ctx)
{
	__u64 g = GO_G(ctx), goid = goroutine_id(g);
	__u64 stream = GO_PARAM4(ctx), common = stream_common(stream);
	struct server_rpc *seen, rpc = {};
	struct incoming_stream *in;

	if (!goid || !common)
		return 0;
	/* A stack growth restarts the function: keep the first entry's ids. */
	seen = process_lookup(&server_rpcs, goid);
	if (seen && seen->stream == stream)
		return 0;

	rpc.start_ns = bpf_ktime_get_boot_ns();
	rpc.stream = stream;
	/* The ServerTransport's data word: the *http2Server operateHeaders ran on. */
	rpc.key.tgid = current_tgid();
	rpc.key.transport = GO_PARAM3(ctx);
	rpc.key.id = read_u32(field_addr(common, off_stream_id));
	in = bpf_map_lookup_elem(&incoming_streams, &rpc.key);
	if (in && in->has_parent) {
		span_start(&rpc.sc, &in->parent);
		__builtin_memcpy(rpc.parent_span_id, in->parent.span_id, SPAN_ID_SIZE);
		rpc.remote_parent = 1;
	} else {
		/* No (valid) incoming context: a root, sampled as the sampler says. */
		span_start(&rpc.sc, 0);
	}
	if (off_stream_ctx != GOTEL_OFFSET_ABSENT)
		rpc.ctx = read_u64(common + off_stream_ctx + 8);
	process_update(&server_rpcs, goid, &rpc, BPF_ANY);
	/* The handler's work (its context derives from the stream's) nests under the span. */
	process_update(&shared_goroutine_spans, goid, &rpc.sc, BPF_ANY);
	if (rpc.ctx)
		process_update(&shared_context_spans, rpc.ctx, &rpc.sc, BPF_ANY);
	return 0;
}

/* The grpc-status value (decimal) among the trailer fields; -1 when absent. */
static __always_inline int trailer_status(__u64 fields, __u64 count)
{
	struct go_string name, value;
	char digits[2];

	for (int i = 0; i < MAX_TRAILER_FIELDS && i < count && fields; i++) {
		__u64 field = fields + i * HEADER_FIELD_SIZE;

		if (read_string_header(field + off_header_field_name, &name))
			return -1;
		if (!string_is(&name, grpc_status_name, sizeof(grpc_status_name) - 1))
			continue;
		if (read_string_header(field + off_header_field_value, &value))
			return -1;
		/* Codes are 0..16: one or two digits. */
		if (value.len < 1 || value.len > 2 || !value.ptr)
			return -1;
		if (bpf_probe_read_user(digits, value.len == 1 ? 1 : 2, (void *)value.ptr))
			return -1;
		if (digits[0] < '0' || digits[0] > '9')
			return -1;
		if (value.len == 1)
			return digits[0] - '0';
		if (digits[1] < '0' || digits[1] > '9')
			return -1;
		return (digits[0] - '0') * 10 + digits[1] - '0';
	}
	return -1;
}

SEC("uprobe")
int finish_stream_entry(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), stream = GO_PARAM2(ctx), hdr = GO_PARAM5(ctx);
	__u64 off_hf = off_server_headers_hf != GOTEL_OFFSET_ABSENT ? off_server_headers_hf
								     : off_header_frame_hf;
	struct server_rpc *rpc = process_lookup(&server_rpcs, goid);
	int code;

	/* writeStatus runs on the handler goroutine; anything else is not our RPC's status. */
	if (!rpc || rpc->stream != stream || off_hf == GOTEL_OFFSET_ABSENT || !hdr)
		return 0;
	code = trailer_status(read_u64(hdr + off_hf), read_u64(hdr + off_hf + 8));
	if (code < 0)
		return 0;
	rpc->status_source = GRPC_STATUS_READ;
	rpc->status_code = code;
	return 0;
}

static __always_inline void fill_server_event(struct grpc_server_event *e, struct server_rpc *rpc)
{
	struct incoming_stream *in = bpf_map_lookup_elem(&incoming_streams, &rpc->key);

	e->start_ns = rpc->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->pid = agent_pid();
	e->trace_flags = rpc->sc.flags;
	e->remote_parent = rpc->remote_parent;
	e->status_source = rpc->status_source;
	e->status_code = rpc->status_code;
	__builtin_memcpy(e->trace_id, rpc->sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, rpc->sc.span_id, sizeof(e->span_id));
	__builtin_memcpy(e->parent_span_id, rpc->parent_span_id, sizeof(e->parent_span_id));
	e->method_len = read_go_string(stream_common(rpc->stream), off_stream_method, e->method);
	e->http2_transport = in != 0;
	if (!in) {
		/* Served through ServeHTTP, or the reader's entry was evicted. */
		e->authority_len = e->peer_ip_len = e->peer_port = 0;
		e->local_ip_len = e->local_port = 0;
		return;
	}
	e->authority_len = in->authority_len;
	__builtin_memcpy(e->authority, in->authority, sizeof(e->authority));
	e->peer_ip_len = in->peer_ip_len;
	e->peer_port = in->peer_port;
	__builtin_memcpy(e->peer_ip, in->peer_ip, sizeof(e->peer_ip));
	e->local_ip_len = in->local_ip_len;
	e->local_port = in->local_port;
	__builtin_memcpy(e->local_ip, in->local_ip, sizeof(e->local_ip));
}

#include "server_metrics.h"
#include "include/maps.h"

SEC("uprobe")
int handle_stream_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct server_rpc *rpc = process_lookup(&server_rpcs, goid);
	struct grpc_server_event *e;

	if (!rpc)
		return 0;
	process_delete(&shared_goroutine_spans, goid);
	if (rpc->ctx)
		process_delete(&shared_context_spans, rpc->ctx);
	record_server_metrics(rpc);
	if (!(rpc->sc.flags & TRACE_FLAG_SAMPLED))
		goto done;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	fill_server_event(e, rpc);
	submit_event(e);
done:
	bpf_map_delete_elem(&incoming_streams, &rpc->key);
	process_delete(&server_rpcs, goid);
	return 0;
}
