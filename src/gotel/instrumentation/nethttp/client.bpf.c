// SPDX-License-Identifier: GPL-2.0
/*
 * net/http client spans: net/http.(*Transport).roundTrip, entry and every RET
 * (HTTP/1 and HTTP/2 alike: roundTrip hands h2 connections to the bundled
 * HTTP/2 transport and waits for its answer), and the span context handed to
 * the socket-level injector from the write path:
 *  - HTTP/1: net/http.(*Request).write runs on the connection's write
 *    goroutine, the one whose socket write carries the request line;
 *  - HTTP/2: (*http2ClientConn).writeHeaders encodes and flushes a stream's
 *    HEADERS frame on the goroutine roundTrip's caller started for the stream
 *    (cs.doRequest), so that goroutine's parent has the client span.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/outgoing.h"
#include "include/events.h"
#include "events.h"
#include "header_map.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 off_request_method = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_url = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_ctx = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_header = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_url_scheme = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_url_host = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_url_path = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_url_raw_query = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_url_user = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_response_status_code = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_response_proto_major = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_response_proto_minor = GOTEL_OFFSET_ABSENT;

/* A round trip in progress, keyed by the calling goroutine's id. */
struct client_request {
	__u64 start_ns;
	__u64 request; /* *http.Request */
	__u64 h2_conn; /* the *http2ClientConn and stream whose HEADERS were announced */
	__u32 h2_stream;
	__u32 _pad;
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
};

GOTEL_PROCESS_HASH(client_requests, struct client_request, 16384);

/* *http.Request -> its client span, for the write goroutine. */
GOTEL_PROCESS_HASH(client_spans_by_request, struct span_context, 16384);

GOTEL_EVENT_TYPE(http_client_event);

SEC("uprobe")
int round_trip_entry(struct pt_regs *ctx)
{
	__u64 g = GO_G(ctx), goid = goroutine_id(g);
	__u64 request = GO_PARAM2(ctx), req_ctx = 0;
	struct client_request *seen, req = {};
	struct span_context parent = {};

	if (!goid)
		return 0;
	seen = process_lookup(&client_requests, goid);
	if (seen && seen->request == request)
		return 0; /* restarted after a stack growth */

	req.start_ns = bpf_ktime_get_boot_ns();
	req.request = request;
	if (off_request_ctx != GOTEL_OFFSET_ABSENT)
		req_ctx = read_u64(request + off_request_ctx + 8);
	if (find_parent_span(req_ctx, g, goid, &parent)) {
		span_start(&req.sc, &parent);
		__builtin_memcpy(req.parent_span_id, parent.span_id, SPAN_ID_SIZE);
	} else {
		span_start(&req.sc, 0);
	}
	process_update(&client_requests, goid, &req, BPF_ANY);
	process_update(&client_spans_by_request, request, &req.sc, BPF_ANY);
	return 0;
}

#include "client_metrics.h"
#include "include/maps.h"

SEC("uprobe")
int round_trip_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct client_request *req = process_lookup(&client_requests, goid);
	struct http_client_event *e;
	__u64 request, url, response;

	if (!req)
		return 0;
	request = req->request;
	process_delete(&client_spans_by_request, request);
	record_client_metrics(ctx, req);
	if (!(req->sc.flags & TRACE_FLAG_SAMPLED))
		goto done;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	e->start_ns = req->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->pid = agent_pid();
	e->trace_flags = req->sc.flags;
	__builtin_memcpy(e->trace_id, req->sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, req->sc.span_id, sizeof(e->span_id));
	__builtin_memcpy(e->parent_span_id, req->parent_span_id, sizeof(e->parent_span_id));

	/* Results: (*Response, error) in RAX and RBX:RCX. */
	response = GO_PARAM1(ctx);
	e->error_type = GO_PARAM2(ctx);
	e->status = response ? read_ptr_field(response, off_response_status_code) : 0;
	e->proto_major = response ? read_ptr_field(response, off_response_proto_major) : 0;
	e->proto_minor = response ? read_ptr_field(response, off_response_proto_minor) : 0;

	e->method_len = read_go_string(request, off_request_method, e->method);
	url = read_ptr_field(request, off_request_url);
	e->scheme_len = read_go_string(url, off_url_scheme, e->scheme);
	e->host_len = read_go_string(url, off_url_host, e->host);
	e->path_len = read_go_string(url, off_url_path, e->path);
	e->query_len = read_go_string(url, off_url_raw_query, e->query);
	e->has_userinfo = read_ptr_field(url, off_url_user) != 0;
	submit_event(e);
done:
	process_delete(&client_requests, goid);
	return 0;
}

/* The write goroutine is about to send this request: tell the injector its span. */
SEC("uprobe")
int request_write_entry(struct pt_regs *ctx)
{
	__u64 request = GO_PARAM1(ctx), g = GO_G(ctx);
	struct span_context *sc = process_lookup(&client_spans_by_request, request);
	struct outgoing_request out = {};

	if (!sc)
		return 0;
	out.sc = *sc;
	out.start_ns = bpf_ktime_get_boot_ns();
	process_update(&shared_outgoing, g, &out, BPF_ANY);
	return 0;
}

/* The bundled HTTP/2 transport speaks TLS to https:// URLs and h2c to http:// ones. */
static __always_inline int is_https(__u64 request)
{
	char scheme[6] = {};

	return read_go_string(read_ptr_field(request, off_request_url), off_url_scheme, scheme) ==
		       5 &&
	       scheme[0] == 'h' && scheme[1] == 't' && scheme[2] == 't' && scheme[3] == 'p' &&
	       scheme[4] == 's';
}

/*
 * (cc *http2ClientConn, streamID uint32, endStream bool, maxFrameSize int,
 * hdrs []byte), entry: the stream's encoded header block goes out now, from
 * this goroutine, which flushes it to the socket. Tell the injector the
 * stream's span, by (goroutine, stream id). A second call for the same
 * stream is its trailers: nothing to add there.
 */
SEC("uprobe")
int write_headers_entry(struct pt_regs *ctx)
{
	__u64 g = GO_G(ctx), conn = GO_PARAM1(ctx);
	__u64 caller = goroutine_parent_id(g);
	struct outgoing_stream_key key = {.tgid = current_tgid(), .g = g, .stream_id = (__u32)GO_PARAM2(ctx)};
	struct client_request *req = caller ? process_lookup(&client_requests, caller) : 0;
	struct outgoing_stream stream = {};
	__u8 value[HEADER_VALUE_MAX];

	if (!req) {
		/* Not ours (gotel attached mid-request, x/net's own transport): never leave a
		 * recycled goroutine's older entry for this stream id in place. */
		bpf_map_delete_elem(&shared_outgoing_streams, &key);
		return 0;
	}
	if (req->h2_conn == conn && req->h2_stream == key.stream_id)
		return 0; /* trailers, or this entry again after a stack growth */
	req->h2_conn = conn;
	req->h2_stream = key.stream_id;
	if (is_https(req->request)) {
		/* Encrypted: its flush is this goroutine's next send; counted as tls. */
		struct outgoing_request marker = {.sc = req->sc, .tls = 1};

		marker.start_ns = bpf_ktime_get_boot_ns();
		process_update(&shared_outgoing, g, &marker, BPF_ANY);
		return 0;
	}
	stream.req.sc = req->sc;
	stream.req.start_ns = bpf_ktime_get_boot_ns();
	/* A traceparent the caller set itself goes out as it is. */
	stream.own_traceparent =
		find_traceparent_header(read_ptr_field(req->request, off_request_header), value) > 0;
	bpf_map_update_elem(&shared_outgoing_streams, &key, &stream, BPF_ANY);
	return 0;
}
