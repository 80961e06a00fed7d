/*
 * RED metrics (rate, errors, duration) aggregated in the kernel: one duration
 * histogram per attribute set, updated by the probe that ends a span, for
 * every request, sampled or not, so that metrics stay exact whatever the
 * sampler drops. No hook of its own: it runs inside the span's end probe.
 *
 * An object includes this header, fills the key red_key_begin() hands it
 * (what each field means is its probe's to say, see Metric in probe.py) and
 * calls red_record(). The agent reads red_metrics every export interval.
 * The series are bounded by the map's size (set by the loader); a request
 * whose new series finds no room is counted in red_overflow instead.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "process.h"

#define RED_MAX_BOUNDS 16
#define RED_WORD_SIZE 16
#define RED_NAME_SIZE 128
#define RED_ADDRESS_SIZE 64

/* One series' attributes, as the probe's end path saw them. Unused bytes stay zero. */
struct red_key {
	__u32 pid;
	__u32 code;    /* a status code (HTTP status, gRPC code) */
	__u32 port;    /* e.g. server.port */
	__u32 outcome; /* probe-defined flags or enum: error kind, status source, scheme */
	char word[RED_WORD_SIZE];	/* e.g. the method */
	char name[RED_NAME_SIZE];	/* e.g. the route, the RPC's full method */
	char address[RED_ADDRESS_SIZE]; /* e.g. server.address */
};

/* Explicit-bucket histogram of durations: bucket i counts d <= red_bounds_ns[i]. */
struct red_histogram {
	__u64 count;
	__u64 sum_ns;
	__u64 buckets[RED_MAX_BOUNDS + 1];
};

/* Set by the loader when metrics are exported; off, the verifier drops all of this. */
volatile const __u32 red_metrics_on = 0;
/* Bucket boundaries in nanoseconds, ascending, set by the loader from the probe's Metric. */
volatile const __u64 red_bounds_ns[RED_MAX_BOUNDS] = {};
volatile const __u32 red_bound_count = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2000); /* the loader sets the cardinality limit */
	__type(key, struct red_key);
	__type(value, struct red_histogram);
} red_metrics SEC(".maps");

/* Requests whose series found the map full (the otel.metric.overflow series), per process:
 * one object counts for every process of its layout. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* rare: memory only for processes that overflow */
	__uint(max_entries, 4096);
	__type(key, __u32 /* pid, as in red_key */);
	__type(value, struct red_histogram);
} red_overflow SEC(".maps");

/* Room for the key off the 512-byte stack, and a zero histogram to create series from. */
struct red_scratch {
	struct red_key key;
	struct red_histogram zero; /* never written */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct red_scratch);
} red_scratch SEC(".maps");

/* A zeroed key to fill; NULL only if the scratch map is missing. */
static __always_inline struct red_key *red_key_begin(void)
{
	__u32 zero = 0;
	struct red_scratch *s;

	if (!red_metrics_on)
		return 0;
	s = bpf_map_lookup_elem(&red_scratch, &zero);
	if (!s)
		return 0;
	__builtin_memset(&s->key, 0, sizeof(s->key));
	s->key.pid = agent_pid();
	return &s->key;
}

/* Copy the first min(len, cap) bytes of a kernel-side buffer (a map value) into a key field. */
static __always_inline void red_copy(char *dst, const char *src, __u32 len, __u32 cap)
{
	__u32 n = len < cap ? len : cap;

	n &= 0xff; /* cap <= 128: bound in a form the verifier tracks */
	if (n && n <= cap)
		bpf_probe_read_kernel(dst, n, src);
}

static __always_inline void red_add(struct red_histogram *h, __u64 duration_ns)
{
	__u32 i, bucket = red_bound_count;

	for (i = 0; i < RED_MAX_BOUNDS; i++) {
		if (i >= red_bound_count)
			break;
		if (duration_ns <= red_bounds_ns[i]) {
			bucket = i;
			break;
		}
	}
	if (bucket > RED_MAX_BOUNDS)
		return;
	/* Atomic: another task's probe may run on this CPU after a preemption. */
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum_ns, duration_ns);
	__sync_fetch_and_add(&h->buckets[bucket], 1);
}

/* Count one request of duration_ns in key's series (key: from red_key_begin). */
static __always_inline void red_record(struct red_key *key, __u64 duration_ns)
{
	struct red_scratch *s = (struct red_scratch *)key; /* the key is the scratch's first member */
	struct red_histogram *h = bpf_map_lookup_elem(&red_metrics, key);
	__u32 pid = key->pid;

	if (!h) {
		/* EEXIST: another CPU made it first. E2BIG: the map is full. */
		bpf_map_update_elem(&red_metrics, key, &s->zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&red_metrics, key);
	}
	if (!h) {
		h = bpf_map_lookup_elem(&red_overflow, &pid);
		if (!h) {
			bpf_map_update_elem(&red_overflow, &pid, &s->zero, BPF_NOEXIST);
			h = bpf_map_lookup_elem(&red_overflow, &pid);
		}
	}
	if (h)
		red_add(h, duration_ns);
}
