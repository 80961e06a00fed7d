// SPDX-License-Identifier: GPL-2.0
/*
 * net/http client spans: net/http.(*Transport).roundTrip, entry and every RET,
 * and the span context handed to the socket-level injector from the write
 * path: net/http.(*Request).write runs on the connection's write goroutine,
 * the one whose socket write carries the request line.
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

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 off_request_method = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_url = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_ctx = GOTEL_OFFSET_ABSENT;
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
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct client_request);
} client_requests SEC(".maps");

/* *http.Request -> its client span, for the write goroutine. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct span_context);
} client_spans_by_request SEC(".maps");

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
	seen = bpf_map_lookup_elem(&client_requests, &goid);
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
	bpf_map_update_elem(&client_requests, &goid, &req, BPF_ANY);
	bpf_map_update_elem(&client_spans_by_request, &request, &req.sc, BPF_ANY);
	return 0;
}

SEC("uprobe")
int round_trip_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct client_request *req = bpf_map_lookup_elem(&client_requests, &goid);
	struct http_client_event *e;
	__u64 request, url, response;

	if (!req)
		return 0;
	request = req->request;
	bpf_map_delete_elem(&client_spans_by_request, &request);
	if (!(req->sc.flags & TRACE_FLAG_SAMPLED))
		goto done;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	e->start_ns = req->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
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
	bpf_map_delete_elem(&client_requests, &goid);
	return 0;
}

/* The write goroutine is about to send this request: tell the injector its span. */
SEC("uprobe")
int request_write_entry(struct pt_regs *ctx)
{
	__u64 request = GO_PARAM1(ctx), g = GO_G(ctx);
	struct span_context *sc = bpf_map_lookup_elem(&client_spans_by_request, &request);
	struct outgoing_request out = {};

	if (!sc)
		return 0;
	out.sc = *sc;
	out.start_ns = bpf_ktime_get_boot_ns();
	bpf_map_update_elem(&shared_outgoing, &g, &out, BPF_ANY);
	return 0;
}
