// SPDX-License-Identifier: GPL-2.0
/*
 * Test stand-in for gotel's client uprobe: at net/http.(*Request).write entry,
 * give the writing goroutine fresh random ids in shared_outgoing, and report
 * them with the request's URL path so the test can match each inserted header
 * with its request.
 */
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>

#include "include/outgoing.h"

char LICENSE[] SEC("license") = "GPL";

#define PATH_SIZE 64

/* From the test program itself (unsafe.Offsetof). */
volatile const __u64 off_request_url = 0;
volatile const __u64 off_url_path = 0;

struct set_event {
	__u64 g;
	__u8 trace_id[TRACE_ID_SIZE];
	__u8 span_id[SPAN_ID_SIZE];
	__u8 flags;
	__u8 _pad[3];
	__u32 path_len;
	char path[PATH_SIZE];
};

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

SEC("uprobe")
int request_write(struct pt_regs *ctx)
{
	__u64 g = ctx->r14, request = ctx->rax, url = 0, path[2] = {};
	struct outgoing_request out = {};
	struct set_event *e;
	__u32 zero = 0;

	fill_random(out.sc.trace_id, TRACE_ID_SIZE);
	fill_random(out.sc.span_id, SPAN_ID_SIZE);
	out.sc.flags = bpf_get_prandom_u32() & 1; /* both values travel */
	out.start_ns = bpf_ktime_get_boot_ns();
	process_update(&shared_outgoing, g, &out, BPF_ANY);

	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->g = g;
	__builtin_memcpy(e->trace_id, out.sc.trace_id, TRACE_ID_SIZE);
	__builtin_memcpy(e->span_id, out.sc.span_id, SPAN_ID_SIZE);
	e->flags = out.sc.flags;
	bpf_probe_read_user(&url, sizeof(url), (void *)(request + off_request_url));
	bpf_probe_read_user(path, sizeof(path), (void *)(url + off_url_path));
	e->path_len = path[1];
	bpf_probe_read_user(e->path, path[1] < PATH_SIZE ? path[1] : PATH_SIZE, (void *)path[0]);
	bpf_ringbuf_output(&events, e, sizeof(*e), 0);
	return 0;
}
