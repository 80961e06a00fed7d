/* Conventions every gotel BPF object follows, so the generic loader can drive it. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Per-object ring buffer named "events"; 1 MiB unless the loader resizes it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Events that did not fit in the ring buffer; the agent reports them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

/*
 * Publish an event struct's layout in BTF: a struct used only through a
 * pointer from bpf_ringbuf_reserve never reaches it otherwise.
 */
#define GOTEL_EVENT_TYPE(name)                          \
	struct {                                        \
		__uint(type, BPF_MAP_TYPE_ARRAY);       \
		__uint(max_entries, 1);                 \
		__type(key, __u32);                     \
		__type(value, struct name);             \
	} name##_layout SEC(".maps")

static __always_inline void count_lost_event(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&events_lost, &zero);

	if (lost)
		__sync_fetch_and_add(lost, 1);
}

/* Submit without waking the reader: it drains on a short timer, in batches. */
#define submit_event(e) bpf_ringbuf_submit((e), BPF_RB_NO_WAKEUP)
