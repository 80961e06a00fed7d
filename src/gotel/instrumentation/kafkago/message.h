/* A kafka.Message in the target's memory: its fields, and its identity (message_context.h). */
#pragma once

#include "include/go_types.h"
#include "include/message_context.h"

volatile const __u64 off_message_topic = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_message_key = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_message_value = GOTEL_OFFSET_ABSENT;

/* Where each part of the topic, key and value sits in the identity's bytes. */
#define IDENTITY_TOPIC_AT 0
#define IDENTITY_TOPIC_ROOM 64
#define IDENTITY_KEY_AT 64
#define IDENTITY_KEY_ROOM 64
#define IDENTITY_VALUE_AT 128
#define IDENTITY_VALUE_ROOM 128

struct go_bytes {
	__u64 ptr;
	__s64 len;
	__s64 cap;
};

/* The identity of the message with this topic at msg: the same for the producer's Message
 * as for the consumer's, which kafka-go fills from the record (decompressed). 0: unknown. */
static __always_inline __u64 message_identity_of(__u64 msg, const struct go_string *topic)
{
	struct message_identity *id;
	struct go_bytes key = {}, value = {};
	__u64 lengths;

	if (off_message_key == GOTEL_OFFSET_ABSENT || off_message_value == GOTEL_OFFSET_ABSENT)
		return 0;
	if (bpf_probe_read_user(&key, sizeof(key), (void *)(msg + off_message_key)) ||
	    bpf_probe_read_user(&value, sizeof(value), (void *)(msg + off_message_value)))
		return 0;
	if (topic->len <= 0 || key.len < 0 || value.len < 0)
		return 0;
	id = message_identity_clear();
	if (!id)
		return 0;
	message_identity_add(id, IDENTITY_TOPIC_AT, IDENTITY_TOPIC_ROOM, topic->ptr, topic->len);
	message_identity_add(id, IDENTITY_KEY_AT, IDENTITY_KEY_ROOM, key.ptr, key.len);
	message_identity_add(id, IDENTITY_VALUE_AT, IDENTITY_VALUE_ROOM, value.ptr, value.len);
	lengths = (__u64)topic->len ^ ((__u64)key.len << 20) ^ ((__u64)value.len << 40);
	return message_identity_hash(id, lengths);
}

/* The Message's Topic string header. */
static __always_inline int message_topic(__u64 msg, struct go_string *topic)
{
	if (off_message_topic == GOTEL_OFFSET_ABSENT)
		return 0;
	return !bpf_probe_read_user(topic, sizeof(*topic), (void *)(msg + off_message_topic));
}

/* Copy a []byte's first bytes into dst (capacity cap); returns the full length. */
static __always_inline __u32 read_go_bytes_n(const struct go_bytes *b, char *dst, __u32 cap)
{
	__u64 n;

	if (b->len <= 0 || !b->ptr)
		return 0;
	n = b->len;
	if (n > cap)
		n = cap;
	n &= 0xffff;
	if (n > cap)
		return 0;
	if (bpf_probe_read_user(dst, n, (void *)b->ptr))
		return 0;
	return b->len > 0xffffffff ? 0xffffffff : (__u32)b->len;
}

/* Copy a Go string (header already read) into dst (capacity cap); returns its length. */
static __always_inline __u32 copy_go_string(const struct go_string *s, char *dst, __u32 cap)
{
	struct go_bytes b = {.ptr = s->ptr, .len = s->len, .cap = s->len};

	return read_go_bytes_n(&b, dst, cap);
}
