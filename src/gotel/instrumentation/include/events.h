/* Conventions every gotel BPF object follows, so the generic loader can drive it. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Per-object ring buffer named "events"; 1 MiB unless the loader resizes it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/*
 * A second, smaller ring tried when the first refuses a record. A reservation fails not only
 * when the ring is full: on Linux 6.18 in a 2-vCPU VM, about 1 in 100k failed while the ring
 * was never more than an eighth full (since 6.15 its lock is an rqspinlock, which can give
 * up); the spill ring, with a lock of its own, took every one of those. The agent drains both.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} events_spill SEC(".maps");

/* Records the first ring refused and the spill ring took; the agent reports them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_spilled SEC(".maps");

/* Events that fit in neither ring; the agent reports them. */
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

static __always_inline void count_spilled_event(void)
{
	__u32 zero = 0;
	__u64 *spilled = bpf_map_lookup_elem(&events_spilled, &zero);

	if (spilled)
		__sync_fetch_and_add(spilled, 1);
}

/* A record of `size` bytes from the events ring, else the spill ring; NULL (and counted as
 * lost) when neither has room. Submit it with submit_event either way. */
static __always_inline void *reserve_event(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (e)
		return e;
	e = bpf_ringbuf_reserve(&events_spill, size, 0);
	if (e)
		count_spilled_event();
	else
		count_lost_event();
	return e;
}

/* Submit without waking the reader: it drains on a short timer, in batches. */
#define submit_event(e) bpf_ringbuf_submit((e), BPF_RB_NO_WAKEUP)
