/*
 * One loaded object serves every process whose binaries share its offsets layout, so state
 * kept per goroutine, request or Go object is keyed by process as well: goids restart at 1
 * in every process and Go heap addresses repeat from one process to the next.
 *
 * The process is the kernel's tgid (what sk_msg programs see too, so the socket injector
 * and the uprobes agree on keys); events carry the pid as the agent sees it, which differs
 * when gotel runs in a pid namespace of its own (a sidecar).
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The agent's pid namespace (st_dev, st_ino of /proc/self/ns/pid); 0: report kernel tgids. */
volatile const __u64 agent_pidns_dev = 0;
volatile const __u64 agent_pidns_ino = 0;

/* The key of every per-process map: the tgid first (the agent forgets a process's entries
 * by it), then what the entry is about. */
struct process_key {
	__u32 tgid;
	__u32 _pad; /* zero: hashed with the rest */
	__u64 id;
};

static __always_inline struct process_key process_key(__u64 id)
{
	struct process_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, ._pad = 0, .id = id };

	return key;
}

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

/* The current process's pid in the agent's pid namespace (for events and metrics). */
static __always_inline __u32 agent_pid(void)
{
	struct bpf_pidns_info ns;

	if (agent_pidns_ino &&
	    !bpf_get_ns_current_pid_tgid(agent_pidns_dev, agent_pidns_ino, &ns, sizeof(ns)))
		return ns.tgid;
	return current_tgid();
}

/* Map operations on per-process maps, by the id within the current process. */
#define process_lookup(map, id)                                    \
	({                                                         \
		struct process_key pk__ = process_key(id);         \
		bpf_map_lookup_elem((map), &pk__);                 \
	})
#define process_update(map, id, value, flags)                      \
	({                                                         \
		struct process_key pk__ = process_key(id);         \
		bpf_map_update_elem((map), &pk__, (value), (flags)); \
	})
#define process_delete(map, id)                                    \
	({                                                         \
		struct process_key pk__ = process_key(id);         \
		bpf_map_delete_elem((map), &pk__);                 \
	})
