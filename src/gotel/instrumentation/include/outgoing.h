/*
 * The contract between uprobes on a client's send path and the socket-level
 * injector: "the goroutine that is about to write request bytes belongs to
 * this span". Keyed by goroutine (the g pointer, R14 in a uprobe, *(fsbase-8)
 * from any kernel hook), never by thread: goroutines move between threads.
 * Objects that include this header share one instance of the map (the loader
 * reuses the first object's fd for every map named shared_*).
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "span_context.h"

struct outgoing_request {
	struct span_context sc;
	__u64 start_ns; /* when the uprobe set it; stale entries are ignored */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* goroutine (g pointer) */
	__type(value, struct outgoing_request);
} shared_outgoing SEC(".maps");
