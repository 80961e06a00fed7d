/*
 * Trace context handed from a producer to a consumer through the kernel, for messaging
 * protocols into which gotel cannot insert a header (lockdown forbids writing the target's
 * memory; rewriting a checksummed, maybe compressed record batch in flight is unsafe).
 *
 * The producer's probe puts its span's context under the message's identity, a hash of the
 * bytes both sides see the same (destination, key, head of the value, lengths), before the
 * message can leave the process; the consumer's probe looks that identity up when the
 * message arrives. The map's "node_" prefix makes the agent share one instance between
 * every process it instruments, so this works when one gotel watches both ends.
 * Identical messages share an identity: the last one produced wins.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "span_context.h"
#include "maps.h"

#define MESSAGE_IDENTITY_BYTES 256

struct message_identity {
	__u64 words[MESSAGE_IDENTITY_BYTES / 8];
};

GOTEL_LRU_HASH(node_message_contexts, __u64 /* message identity */, struct span_context, 65536);

/* Per-CPU scratch: an identity's bytes outgrow the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct message_identity);
} message_identity_scratch SEC(".maps");

static __always_inline struct message_identity *message_identity_clear(void)
{
	__u32 zero = 0;
	struct message_identity *id = bpf_map_lookup_elem(&message_identity_scratch, &zero);

	if (!id)
		return 0;
	for (int i = 0; i < MESSAGE_IDENTITY_BYTES / 8; i++)
		id->words[i] = 0;
	return id;
}

/* Copy the first bytes of [ptr, ptr+len) into the identity at byte `at`, at most `room`. */
#define message_identity_add(id, at, room, ptr, len)                                    \
	do {                                                                            \
		__u64 n__ = (len);                                                      \
		if ((ptr) && n__ > 0) {                                                 \
			if (n__ > (room))                                               \
				n__ = (room);                                           \
			n__ &= 0x1ff;                                                   \
			if (n__ <= (room))                                              \
				bpf_probe_read_user((__u8 *)(id)->words + (at), n__,    \
						    (void *)(ptr));                     \
		}                                                               \
	} while (0)

static __always_inline __u64 mix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

/* The identity's hash; `lengths` folds in the full lengths, which the bytes may cut. */
static __always_inline __u64 message_identity_hash(const struct message_identity *id,
						    __u64 lengths)
{
	__u64 h = mix64(lengths ^ 0x9e3779b97f4a7c15ULL);

	for (int i = 0; i < MESSAGE_IDENTITY_BYTES / 8; i++)
		h = mix64(h ^ id->words[i]) + 0x9e3779b97f4a7c15ULL;
	return h ? h : 1;
}
