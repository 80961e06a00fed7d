// SPDX-License-Identifier: GPL-2.0
/*
 * Test stand-in for an HTTP/2 client uprobe (Go's bundled net/http HTTP/2
 * client): fill shared_outgoing_streams with random ids for each request's
 * HEADERS frame, and report them with the request's :path.
 *
 *  - net/http.(*http2ClientConn).writeHeader(name, value string), entry: one
 *    field of the request being encoded, on the request's goroutine. :authority
 *    comes first (a new request), :path gives the path, a traceparent field
 *    means the request carries its own;
 *  - net/http.(*http2ClientConn).writeHeaders(streamID, endStream,
 *    maxFrameSize, hdrs), entry: the encoded block goes out for streamID, from
 *    the same goroutine, which then flushes it to the socket.
 *
 * Trailers go through writeHeaders too, without :authority: they get nothing.
 */
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>

#include "include/outgoing.h"

char LICENSE[] SEC("license") = "GPL";

#define PATH_SIZE 64

/* The request a goroutine is encoding. */
struct pending {
	__u32 valid; /* :authority seen, writeHeaders not yet */
	__u32 own;   /* a traceparent field */
	__u32 path_len;
	__u32 _pad;
	char path[PATH_SIZE];
};

struct set_event {
	__u64 g;
	__u32 stream_id;
	__u32 own;
	__u8 trace_id[TRACE_ID_SIZE];
	__u8 span_id[SPAN_ID_SIZE];
	__u8 flags;
	__u8 _pad[3];
	__u32 path_len;
	char path[PATH_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

/* Also what puts struct set_event into BTF for the decoder. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct set_event);
} scratch SEC(".maps");

static __always_inline int name_is(const char *name, __u64 len, const char *want, __u64 want_len)
{
	char buf[16] = {};

	if (len != want_len || len >= sizeof(buf) || bpf_probe_read_user(buf, len & 15, name))
		return 0;
	for (int i = 0; i < 15; i++) {
		if (i >= len)
			break;
		if (buf[i] != want[i])
			return 0;
	}
	return 1;
}

SEC("uprobe")
int write_header(struct pt_regs *ctx)
{
	/* (cc, name string, value string) */
	const char *name = (const char *)ctx->rbx, *value = (const char *)ctx->rdi;
	__u64 g = ctx->r14, name_len = ctx->rcx, value_len = ctx->rsi;
	struct pending *p, fresh = {};

	if (name_is(name, name_len, ":authority", 10)) {
		fresh.valid = 1;
		bpf_map_update_elem(&pending, &g, &fresh, BPF_ANY);
		return 0;
	}
	p = bpf_map_lookup_elem(&pending, &g);
	if (!p || !p->valid)
		return 0;
	if (name_is(name, name_len, ":path", 5)) {
		p->path_len = value_len;
		bpf_probe_read_user(p->path, value_len < PATH_SIZE ? value_len : PATH_SIZE, value);
	} else if (name_is(name, name_len, "traceparent", 11)) {
		p->own = 1;
	}
	return 0;
}

SEC("uprobe")
int write_headers(struct pt_regs *ctx)
{
	struct outgoing_stream_key key = {.tgid = current_tgid(), .g = ctx->r14, .stream_id = (__u32)ctx->rbx};
	struct outgoing_stream out = {};
	struct set_event *e;
	struct pending *p;
	__u32 zero = 0;

	p = bpf_map_lookup_elem(&pending, &key.g);
	if (!p || !p->valid)
		return 0; /* trailers, or this entry ran again after a stack growth */
	p->valid = 0;
	fill_random(out.req.sc.trace_id, TRACE_ID_SIZE);
	fill_random(out.req.sc.span_id, SPAN_ID_SIZE);
	out.req.sc.flags = bpf_get_prandom_u32() & 1; /* both values travel */
	out.req.start_ns = bpf_ktime_get_boot_ns();
	out.own_traceparent = p->own;
	bpf_map_update_elem(&shared_outgoing_streams, &key, &out, BPF_ANY);

	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->g = key.g;
	e->stream_id = key.stream_id;
	e->own = p->own;
	__builtin_memcpy(e->trace_id, out.req.sc.trace_id, TRACE_ID_SIZE);
	__builtin_memcpy(e->span_id, out.req.sc.span_id, SPAN_ID_SIZE);
	e->flags = out.req.sc.flags;
	e->path_len = p->path_len;
	__builtin_memcpy(e->path, p->path, PATH_SIZE);
	bpf_ringbuf_output(&events, e, sizeof(*e), 0);
	return 0;
}

/*
 * injectcheck's raw HTTP/2 client: main.announce(streamID uint32, own bool,
 * path string), entry, on the goroutine about to write the stream's frames.
 */
SEC("uprobe")
int announce_stream(struct pt_regs *ctx)
{
	struct outgoing_stream_key key = {.tgid = current_tgid(), .g = ctx->r14, .stream_id = (__u32)ctx->rax};
	__u64 path_len = ctx->rdi;
	struct outgoing_stream out = {};
	struct set_event *e;
	__u32 zero = 0;

	fill_random(out.req.sc.trace_id, TRACE_ID_SIZE);
	fill_random(out.req.sc.span_id, SPAN_ID_SIZE);
	out.req.sc.flags = bpf_get_prandom_u32() & 1;
	out.req.start_ns = bpf_ktime_get_boot_ns();
	out.own_traceparent = ctx->rbx & 1;
	bpf_map_update_elem(&shared_outgoing_streams, &key, &out, BPF_ANY);

	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->g = key.g;
	e->stream_id = key.stream_id;
	e->own = out.own_traceparent;
	__builtin_memcpy(e->trace_id, out.req.sc.trace_id, TRACE_ID_SIZE);
	__builtin_memcpy(e->span_id, out.req.sc.span_id, SPAN_ID_SIZE);
	e->flags = out.req.sc.flags;
	e->path_len = path_len;
	bpf_probe_read_user(e->path, path_len < PATH_SIZE ? path_len : PATH_SIZE,
			    (const void *)ctx->rcx);
	bpf_ringbuf_output(&events, e, sizeof(*e), 0);
	return 0;
}
