// SPDX-License-Identifier: GPL-2.0
/*
 * gRPC client spans (google.golang.org/grpc):
 *
 *  - (*ClientConn).Invoke, entry and every RET: a unary call;
 *  - (*ClientConn).NewStream, entry and every RET, then (*clientStream).finish:
 *    a stream, from its creation to its end. NewStream may return an
 *    interceptor's wrapper, so the *clientStream is learnt where grpc makes
 *    its first attempt, (*clientStream).newAttemptLocked, on the caller's
 *    goroutine;
 *  - internal/transport.(*http2Client).createHeaderFields, every RET, and
 *    (*loopyWriter).writeHeader, entry: the request's header fields are built
 *    on the caller's goroutine and encoded on the connection's writer
 *    goroutine; the slice's array links the two, so the writer goroutine can
 *    be told which span the HEADERS frame of which stream belongs to
 *    (shared_outgoing_streams).
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

volatile const __u64 off_cc_authority = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_cc_target = GOTEL_OFFSET_ABSENT;
/* An error from grpc: *internal/status.Error{s: *Status{s: *spb.Status{Code, Message}}}. */
volatile const __u64 off_status_error_s = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_status_s = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_status_proto_code = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_status_proto_message = GOTEL_OFFSET_ABSENT;
/* io.EOF is an *errors.errorString; a stream that ends with it succeeded. */
volatile const __u64 off_error_string_s = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_loopy_side = GOTEL_OFFSET_ABSENT;

#define GRPC_MAX_CODE 16 /* Unauthenticated */
#define LOOPY_CLIENT_SIDE 0

/* A call in progress: by the calling goroutine's id, then (streams) by *clientStream. */
struct client_call {
	__u64 start_ns;
	__u64 cc;  /* *ClientConn */
	__u64 ctx; /* the call context's data word */
	__u64 cs;  /* the *clientStream, once seen (streams) */
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
	enum grpc_call_kind kind;
	__u32 method_len;
	char method[GRPC_METHOD_SIZE];
};

GOTEL_PROCESS_HASH(client_calls, struct client_call, 16384);

GOTEL_PROCESS_HASH(client_streams, struct client_call, 16384);

/* The header fields' array -> the span whose HEADERS they will become. */
GOTEL_PROCESS_HASH(client_headers, struct outgoing_request, 16384);

GOTEL_EVENT_TYPE(grpc_client_event);

/* Copy a Go string given as (ptr, len) registers; returns its full length. */
static __always_inline __u32 copy_string(__u64 ptr, __s64 len, char *dst, __u32 cap)
{
	__u64 n = len;

	if (len <= 0 || !ptr)
		return 0;
	if (n > cap)
		n = cap;
	n &= 0xffff; /* bound in a form the verifier tracks through the helper call */
	if (n > cap || bpf_probe_read_user(dst, n, (void *)ptr))
		return 0;
	return len > 0xffffffff ? 0xffffffff : (__u32)len;
}

static __always_inline void start_call(__u64 g, enum grpc_call_kind kind, __u64 cc, __u64 call_ctx,
				       __u64 method, __u64 method_len)
{
	__u64 goid = goroutine_id(g);
	struct client_call *seen, call = {};
	struct span_context parent = {};

	if (!goid)
		return;
	seen = process_lookup(&client_calls, goid);
	if (seen && seen->cc == cc && seen->ctx == call_ctx && seen->kind == kind)
		return; /* restarted after a stack growth */

	call.start_ns = bpf_ktime_get_boot_ns();
	call.cc = cc;
	call.ctx = call_ctx;
	call.kind = kind;
	if (find_parent_span(call_ctx, g, goid, &parent)) {
		span_start(&call.sc, &parent);
		__builtin_memcpy(call.parent_span_id, parent.span_id, SPAN_ID_SIZE);
	} else {
		span_start(&call.sc, 0);
	}
	/* Copied now: a method string built at run time may be gone by the stream's end. */
	call.method_len = copy_string(method, method_len, call.method, GRPC_METHOD_SIZE);
	process_update(&client_calls, goid, &call, BPF_ANY);
}

/* The error is io.EOF (or reads like it): how grpc says a stream ended well. */
static __always_inline int is_eof(__u64 err)
{
	char buf[3];
	struct go_string s = {};

	if (off_error_string_s == GOTEL_OFFSET_ABSENT ||
	    bpf_probe_read_user(&s, sizeof(s), (void *)(err + off_error_string_s)))
		return 0;
	if (s.len != 3 || !s.ptr || bpf_probe_read_user(buf, sizeof(buf), (void *)s.ptr))
		return 0;
	return buf[0] == 'E' && buf[1] == 'O' && buf[2] == 'F';
}

/*
 * The call's outcome from its error interface (itab, err): OK, the code of a
 * gRPC status (*proto: its *spb.Status), else GRPC_STATUS_NOT_STATUS (grpc's
 * status.Code calls any other error Unknown).
 */
static __always_inline enum grpc_status_source call_status(__u64 itab, __u64 err, int eof_is_ok,
							   __u32 *code, __u64 *proto)
{
	__u64 status;

	*code = 0;
	if (!itab || (eof_is_ok && is_eof(err)))
		return GRPC_STATUS_OK;
	status = read_ptr_field(err, off_status_error_s);
	*proto = read_ptr_field(status, off_status_s);
	if (!*proto || off_status_proto_code == GOTEL_OFFSET_ABSENT ||
	    bpf_probe_read_user(code, sizeof(*code), (void *)(*proto + off_status_proto_code)))
		return GRPC_STATUS_NOT_STATUS;
	/* Not a status after all if the "code" is out of range: a different error type. */
	if (*code == 0 || *code > GRPC_MAX_CODE) {
		*code = 0;
		return GRPC_STATUS_NOT_STATUS;
	}
	return GRPC_STATUS_READ;
}

static __always_inline void read_outcome(struct grpc_client_event *e, __u64 itab, __u64 err,
					 int eof_is_ok)
{
	__u64 proto = 0;

	e->status_source = call_status(itab, err, eof_is_ok, &e->status_code, &proto);
	e->error_type = e->status_source == GRPC_STATUS_OK ? 0 : itab;
	e->message_len = 0;
	if (e->status_source == GRPC_STATUS_READ)
		e->message_len = read_go_string(proto, off_status_proto_message, e->message);
}

#include "client_metrics.h"
#include "include/maps.h"

static __always_inline void emit_call(struct client_call *call, __u64 itab, __u64 err,
				      int eof_is_ok)
{
	struct grpc_client_event *e;

	record_client_metrics(call, itab, err, eof_is_ok);
	if (!(call->sc.flags & TRACE_FLAG_SAMPLED))
		return;
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->start_ns = call->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->pid = agent_pid();
	e->trace_flags = call->sc.flags;
	e->kind = call->kind;
	__builtin_memcpy(e->trace_id, call->sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, call->sc.span_id, sizeof(e->span_id));
	__builtin_memcpy(e->parent_span_id, call->parent_span_id, sizeof(e->parent_span_id));
	e->method_len = call->method_len;
	__builtin_memcpy(e->method, call->method, sizeof(e->method));
	/* The authority grpc puts in :authority (host:port), else the dial target. */
	e->target_len = read_go_string(call->cc, off_cc_authority, e->target);
	if (!e->target_len)
		e->target_len = read_go_string(call->cc, off_cc_target, e->target);
	read_outcome(e, itab, err, eof_is_ok);
	submit_event(e);
}

SEC("uprobe")
int invoke_entry(struct pt_regs *ctx)
{
	/* (cc, ctx Context, method string, args, reply any, opts ...CallOption) */
	start_call(GO_G(ctx), GRPC_CALL_UNARY, GO_PARAM1(ctx), GO_PARAM3(ctx), GO_PARAM4(ctx),
		   GO_PARAM5(ctx));
	return 0;
}

SEC("uprobe")
int invoke_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct client_call *call = process_lookup(&client_calls, goid);

	if (!call || call->kind != GRPC_CALL_UNARY)
		return 0;
	/* Result: error in RAX (itab), RBX (data). */
	emit_call(call, GO_PARAM1(ctx), GO_PARAM2(ctx), 0);
	process_delete(&client_calls, goid);
	return 0;
}

SEC("uprobe")
int new_stream_entry(struct pt_regs *ctx)
{
	/* (cc, ctx Context, desc *StreamDesc, method string, opts ...CallOption) */
	start_call(GO_G(ctx), GRPC_CALL_STREAM, GO_PARAM1(ctx), GO_PARAM3(ctx), GO_PARAM5(ctx),
		   GO_PARAM6(ctx));
	return 0;
}

/* grpc's first attempt at a stream: bind the caller's pending NewStream to it. */
SEC("uprobe")
int new_attempt_entry(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), cs = GO_PARAM1(ctx);
	struct client_call *call = process_lookup(&client_calls, goid);

	if (!call || call->kind != GRPC_CALL_STREAM || call->cs || !cs)
		return 0; /* a unary call, or a retry of a stream already bound */
	call->cs = cs;
	process_update(&client_streams, cs, call, BPF_ANY);
	return 0;
}

SEC("uprobe")
int new_stream_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct client_call *call = process_lookup(&client_calls, goid), *stream;
	/* Results: ClientStream in RAX, RBX; error in RCX (itab), RDI (data). */
	__u64 itab = GO_PARAM3(ctx), err = GO_PARAM4(ctx), cs;

	if (!call || call->kind != GRPC_CALL_STREAM)
		return 0;
	cs = call->cs;
	if (!cs) {
		/* Failed before any attempt, or a stream grpc did not make: span = NewStream. */
		emit_call(call, itab, err, 0);
	} else if (itab) {
		/* Failed after the first attempt; unless finish already ended the span. */
		stream = process_lookup(&client_streams, cs);
		if (stream) {
			emit_call(stream, itab, err, 0);
			process_delete(&client_streams, cs);
		}
	}
	/* Otherwise the stream is open: its span ends in finish. */
	process_delete(&client_calls, goid);
	return 0;
}

SEC("uprobe")
int stream_finish_entry(struct pt_regs *ctx)
{
	/* (cs *clientStream, err error): runs once per stream, on whichever goroutine ends it. */
	__u64 cs = GO_PARAM1(ctx);
	struct client_call *stream = process_lookup(&client_streams, cs);

	if (!stream)
		return 0;
	emit_call(stream, GO_PARAM2(ctx), GO_PARAM3(ctx), 1);
	process_delete(&client_streams, cs);
	return 0;
}

/* The request's header fields exist now, before the writer goroutine can see them. */
SEC("uprobe")
int create_header_fields_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), fields = GO_PARAM1(ctx);
	struct client_call *call = process_lookup(&client_calls, goid);
	struct outgoing_request out = {};

	if (!call || !fields)
		return 0;
	out.sc = call->sc;
	out.start_ns = bpf_ktime_get_boot_ns();
	process_update(&client_headers, fields, &out, BPF_ANY);
	return 0;
}

/* hpack.HeaderField{Name, Value string; Sensitive bool}: 40 bytes by the Go ABI. */
#define HEADER_FIELD_SIZE 40
/* The request's fields: pseudo-headers and grpc's own (8), then the metadata. */
#define MAX_REQUEST_FIELDS 32
#define FIELD_BATCH 8 /* fields read at once: 320 bytes of stack */
#define TRACEPARENT_NAME_LEN 11

volatile const __u64 off_header_field_name = GOTEL_OFFSET_ABSENT;

/* Is one of the n fields at hf named traceparent? (grpc lower-cases metadata keys.) */
static __always_inline __u32 has_traceparent(__u64 hf, __u64 n)
{
	__u64 fields[FIELD_BATCH * HEADER_FIELD_SIZE / 8];
	char name[TRACEPARENT_NAME_LEN + 1];
	__u64 diff, batch, ptr;

	if (off_header_field_name == GOTEL_OFFSET_ABSENT || !hf ||
	    off_header_field_name > HEADER_FIELD_SIZE - 16 || off_header_field_name % 8)
		return 0;
	if (n > MAX_REQUEST_FIELDS)
		n = MAX_REQUEST_FIELDS;
	for (int i = 0; i < MAX_REQUEST_FIELDS; i += FIELD_BATCH) {
		if (i >= n)
			break;
		/* A batch of fields in one read; then the bytes of 11-byte names only. */
		batch = n - i < FIELD_BATCH ? n - i : FIELD_BATCH;
		if (bpf_probe_read_user(fields, (batch * HEADER_FIELD_SIZE) & 511,
					(void *)(hf + i * HEADER_FIELD_SIZE)))
			return 0;
#pragma unroll
		for (int k = 0; k < FIELD_BATCH; k++) {
			__u32 at = (k * HEADER_FIELD_SIZE + off_header_field_name) / 8;

			if (k >= batch || at + 1 >= sizeof(fields) / 8)
				break;
			ptr = fields[at];
			if (fields[at + 1] != TRACEPARENT_NAME_LEN || !ptr)
				continue;
			if (bpf_probe_read_user(name, TRACEPARENT_NAME_LEN, (void *)ptr))
				continue;
			/* "traceparent" without a string constant in .rodata */
			diff = (name[0] ^ 't') | (name[1] ^ 'r') | (name[2] ^ 'a') | (name[3] ^ 'c') |
			       (name[4] ^ 'e') | (name[5] ^ 'p') | (name[6] ^ 'a') | (name[7] ^ 'r') |
			       (name[8] ^ 'e') | (name[9] ^ 'n') | (name[10] ^ 't');
			if (!diff)
				return 1;
		}
	}
	return 0;
}

/*
 * The connection's writer goroutine encodes a HEADERS frame for streamID:
 * tell the injector its span. One writer goroutine serves a connection and
 * packs many streams' frames into one socket write, so the context is keyed
 * by (goroutine, stream id), not by goroutine alone.
 */
SEC("uprobe")
int write_header_entry(struct pt_regs *ctx)
{
	/* (l *loopyWriter, streamID uint32, endStream bool, hf []hpack.HeaderField, onWrite) */
	__u64 loopy = GO_PARAM1(ctx), fields = GO_PARAM4(ctx), nfields = GO_PARAM5(ctx);
	struct outgoing_stream_key key = {.tgid = current_tgid(), .g = GO_G(ctx), .stream_id = (__u32)GO_PARAM2(ctx)};
	struct outgoing_stream stream = {};
	struct outgoing_request *out;

	/* A server's loopy writer only answers: it has no request to propagate. */
	if (off_loopy_side != GOTEL_OFFSET_ABSENT &&
	    read_ptr_field(loopy, off_loopy_side) != LOOPY_CLIENT_SIDE)
		return 0;
	out = process_lookup(&client_headers, fields);
	if (!out)
		return 0;
	stream.req = *out;
	stream.req.start_ns = bpf_ktime_get_boot_ns();
	/* Metadata the caller set itself: its traceparent goes out as it is. */
	stream.own_traceparent = has_traceparent(fields, nfields);
	bpf_map_update_elem(&shared_outgoing_streams, &key, &stream, BPF_ANY);
	process_delete(&client_headers, fields);
	return 0;
}
