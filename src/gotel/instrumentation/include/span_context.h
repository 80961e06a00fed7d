/* W3C trace context as gotel keeps it in the kernel. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TRACE_ID_SIZE 16
#define SPAN_ID_SIZE 8

#define TRACE_FLAG_SAMPLED 0x01

struct span_context {
	__u8 trace_id[TRACE_ID_SIZE];
	__u8 span_id[SPAN_ID_SIZE];
	__u8 flags; /* W3C trace-flags: bit 0 sampled */
	__u8 _pad[7];
};

static __always_inline void fill_random(__u8 *buf, int len)
{
	/* len is a multiple of 4 at every call site. */
	for (int i = 0; i < len; i += 4) {
		__u32 r = bpf_get_prandom_u32();

		__builtin_memcpy(buf + i, &r, 4);
	}
}

/* A new root context: ids are decided here so children and headers agree. */
static __always_inline void span_context_new_root(struct span_context *sc)
{
	fill_random(sc->trace_id, TRACE_ID_SIZE);
	fill_random(sc->span_id, SPAN_ID_SIZE);
}
