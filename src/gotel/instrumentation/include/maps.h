/* Map declarations gotel's objects repeat. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "process.h"

/*
 * A hash map that evicts its least recently used entries when full: state keyed by a
 * goroutine, request or object whose end gotel may never see (it attached mid-call, the
 * program dropped the object) ages out instead of filling the map.
 */
#define GOTEL_LRU_HASH(name, key_type, value_type, entries) \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);        \
		__uint(max_entries, entries);               \
		__type(key, key_type);                      \
		__type(value, value_type);                  \
	} name SEC(".maps")

/* An LRU hash of per-process state (struct process_key: tgid, then a goid or address). */
#define GOTEL_PROCESS_HASH(name, value_type, entries) \
	GOTEL_LRU_HASH(name, struct process_key, value_type, entries)
