// SPDX-License-Identifier: GPL-2.0
/*
 * net/http server spans: net/http.serverHandler.ServeHTTP, entry and every RET.
 * The entry decides the span's ids (adopting an incoming traceparent) and
 * makes the span findable by the request's context and goroutine; the return
 * reads the request (still reachable from the caller's frame) and the status.
 *
 * Every request net/http serves passes serverHandler.ServeHTTP: HTTP/1, and
 * HTTP/2 over TLS and unencrypted (Server.Protocols), whose handler goroutines
 * call it through initALPNRequest / unencryptedHTTP2Request. Only
 * golang.org/x/net/http2's ServeConn, which h2c.NewHandler calls from inside
 * the handler of the connection's first "PRI *" request, calls the user's
 * handler directly: (*serverConn).runHandler is hooked for it with the same
 * return program. A request seen by both (x/net's server configured on a TLS
 * http.Server) makes one span: the inner entry finds it already started.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/traceparent.h"
#include "include/http_route.h"
#include "include/events.h"
#include "events.h"
#include "header_map.h"

char LICENSE[] SEC("license") = "GPL";

/* Struct field offsets, from the target's DWARF or gotel's offsets database. */
volatile const __u64 off_request_method = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_url = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_header = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_ctx = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_host = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_remote_addr = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_proto_major = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_proto_minor = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_tls = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_pattern = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_request_pat = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_pattern_str = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_url_path = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_url_raw_query = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_response_req = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_response_status = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_h2_writer_rws = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_h2_state_req = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_h2_state_status = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_xh2_writer_rws = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_xh2_state_req = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_xh2_state_status = GOTEL_OFFSET_ABSENT;
volatile const __u32 route_source = HTTP_ROUTE_NONE;

/* A request being served, keyed by its goroutine's id. */
struct server_request {
	__u64 start_ns;
	__u64 request;	/* *http.Request */
	__u64 response; /* what writes the response: see enum response_writer */
	__u64 ctx;	/* the request context's data word */
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
	__u32 remote_parent;
	__u32 writer; /* enum response_writer */
};

enum response_writer {
	/* The ResponseWriter's data word: *response (HTTP/1) or *http2responseWriter. */
	WRITER_INTERFACE = 0,
	/*
	 * x/net's *responseWriterState, taken at runHandler's entry: its handlerDone
	 * clears the writer's pointer to it before runHandler returns.
	 */
	WRITER_XH2_STATE = 1,
};

GOTEL_PROCESS_HASH(server_requests, struct server_request, 16384);

GOTEL_EVENT_TYPE(http_server_event);
_Static_assert(HTTP_ROUTE_MAX == HTTP_ROUTE_SIZE, "a router's route fills the event's route");

/* Adopt the request's traceparent header, if it has a valid one. */
static __always_inline int incoming_parent(__u64 request, struct span_context *parent)
{
	__u8 value[HEADER_VALUE_MAX] = {};
	__u32 len = find_traceparent_header(read_ptr_field(request, off_request_header), value);

	/* Version 00 is exactly 55 bytes; later versions may append "-..." fields. */
	if (len < TRACEPARENT_LEN || (len > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != '-'))
		return 0;
	return parse_traceparent(value, parent) == 0;
}

/*
 * "PRI * HTTP/2.0": the h2c connection preface, which net/http hands to the
 * handler as a request; h2c.NewHandler then serves the whole connection from
 * it. Its requests get spans of their own (runHandler); the preface none.
 */
static __always_inline int is_h2c_preface(__u64 request)
{
	char method[4] = {};

	return read_go_string(request, off_request_method, method) == 3 && method[0] == 'P' &&
	       method[1] == 'R' && method[2] == 'I';
}

static __always_inline int start_request(struct pt_regs *ctx, __u64 request, __u64 response,
					 enum response_writer writer)
{
	__u64 g = GO_G(ctx), goid = goroutine_id(g);
	struct server_request *seen, req = {};
	struct span_context parent = {};

	if (!goid || !request)
		return 0;
	/* A stack growth restarts the function, x/net's runHandler calls ServeHTTP: keep the
	 * first entry's ids. */
	seen = process_lookup(&server_requests, goid);
	if (seen && seen->request == request)
		return 0;
	if (is_h2c_preface(request))
		return 0;

	req.start_ns = bpf_ktime_get_boot_ns();
	req.request = request;
	req.response = response;
	req.writer = writer;
	if (incoming_parent(request, &parent)) {
		span_start(&req.sc, &parent);
		__builtin_memcpy(req.parent_span_id, parent.span_id, SPAN_ID_SIZE);
		req.remote_parent = 1;
	} else {
		span_start(&req.sc, 0);
	}
	if (off_request_ctx != GOTEL_OFFSET_ABSENT)
		req.ctx = read_u64(request + off_request_ctx + 8);
	process_update(&server_requests, goid, &req, BPF_ANY);
	process_delete(&shared_http_routes, goid); /* never a previous request's route */
	process_update(&shared_goroutine_spans, goid, &req.sc, BPF_ANY);
	if (req.ctx)
		process_update(&shared_context_spans, req.ctx, &req.sc, BPF_ANY);
	return 0;
}

/* serverHandler.ServeHTTP(sh, rw ResponseWriter, req *Request) */
SEC("uprobe")
int serve_http_entry(struct pt_regs *ctx)
{
	return start_request(ctx, GO_PARAM4(ctx), GO_PARAM3(ctx), WRITER_INTERFACE);
}

/* x/net/http2 (*serverConn).runHandler(sc, rw *responseWriter, req *Request, handler) */
SEC("uprobe")
int run_handler_entry(struct pt_regs *ctx)
{
	__u64 state = read_ptr_field(GO_PARAM2(ctx), off_xh2_writer_rws);

	return start_request(ctx, GO_PARAM3(ctx), state, WRITER_XH2_STATE);
}

/* The status the handler wrote; 0 when it wrote none (Go then sends 200). */
static __always_inline __u64 response_status(__u64 response, enum response_writer writer,
					     __u64 request)
{
	__u64 state;

	if (writer == WRITER_XH2_STATE) /* golang.org/x/net/http2 (h2c.NewHandler) */
		return read_ptr_field(response, off_xh2_state_req) == request
			       ? read_ptr_field(response, off_xh2_state_status)
			       : 0;
	if (read_ptr_field(response, off_response_req) == request)
		return read_ptr_field(response, off_response_status);
	/* Not an HTTP/1 *response: try the HTTP/2 writer, checked the same way. */
	state = read_ptr_field(response, off_h2_writer_rws);
	if (state && read_ptr_field(state, off_h2_state_req) == request)
		return read_ptr_field(state, off_h2_state_status);
	return 0;
}

static __always_inline __u32 read_route(__u64 request, char *dst)
{
	__u64 pat;

	switch (route_source) {
	case HTTP_ROUTE_PATTERN_FIELD:
		return read_go_string_n(request, off_request_pattern, dst, HTTP_ROUTE_SIZE);
	case HTTP_ROUTE_PAT_POINTER:
		pat = read_ptr_field(request, off_request_pat);
		return read_go_string_n(pat, off_pattern_str, dst, HTTP_ROUTE_SIZE);
	}
	return 0;
}

#include "server_metrics.h"
#include "include/maps.h"

SEC("uprobe")
int serve_http_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct server_request *req = process_lookup(&server_requests, goid);
	struct http_server_event *e;
	struct http_route *routed;
	__u64 request, url;

	if (!req)
		return 0;
	process_delete(&shared_goroutine_spans, goid);
	if (req->ctx)
		process_delete(&shared_context_spans, req->ctx);
	record_server_metrics(req, goid);
	if (!(req->sc.flags & TRACE_FLAG_SAMPLED))
		goto done;

	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	request = req->request;
	e->start_ns = req->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->pid = agent_pid();
	e->trace_flags = req->sc.flags;
	e->remote_parent = req->remote_parent;
	__builtin_memcpy(e->trace_id, req->sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, req->sc.span_id, sizeof(e->span_id));
	__builtin_memcpy(e->parent_span_id, req->parent_span_id, sizeof(e->parent_span_id));
	e->status = response_status(req->response, req->writer, request);

	e->proto_major = read_ptr_field(request, off_request_proto_major);
	e->proto_minor = read_ptr_field(request, off_request_proto_minor);
	e->tls = read_ptr_field(request, off_request_tls) != 0;
	e->method_len = read_go_string(request, off_request_method, e->method);
	e->host_len = read_go_string(request, off_request_host, e->host);
	e->remote_addr_len = read_go_string(request, off_request_remote_addr, e->remote_addr);
	/* A router's matched route is the more specific one (a ServeMux may only mount it). */
	routed = process_lookup(&shared_http_routes, goid);
	if (routed && routed->len) {
		e->route_len = routed->len;
		bpf_probe_read_kernel(e->route, sizeof(e->route), routed->route);
	} else {
		e->route_len = read_route(request, e->route);
	}
	url = read_ptr_field(request, off_request_url);
	e->path_len = read_go_string(url, off_url_path, e->path);
	e->query_len = read_go_string(url, off_url_raw_query, e->query);
	submit_event(e);
done:
	process_delete(&shared_http_routes, goid);
	process_delete(&server_requests, goid);
	return 0;
}
