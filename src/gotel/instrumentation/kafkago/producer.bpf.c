// SPDX-License-Identifier: GPL-2.0
/*
 * kafka-go producer spans (github.com/segmentio/kafka-go): entry and every RET of
 * (*Writer).WriteMessages(ctx, msgs ...Message) error. One PRODUCER span per call, for all
 * its messages (two uprobe hits per call, whatever the batch).
 *
 * At the entry, before any message can leave the process, each message's identity is put
 * with the span's context into node_message_contexts, where the consumer's probe finds it
 * (include/message_context.h): nothing is written into the target or its records.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/events.h"
#include "include/message_context.h"
#include "events.h"
#include "call.h"
#include "message.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 off_writer_topic = GOTEL_OFFSET_ABSENT;
/* Message.Time, its last field: a time.Time (wall, ext, loc) ends it, so the array stride
 * is this offset + 24. */
volatile const __u64 off_message_time = GOTEL_OFFSET_ABSENT;

#define GO_TIME_SIZE 24

GOTEL_EVENT_TYPE(kafka_event);

/* The topic a message goes to: the Writer's, else the message's own (kafka-go allows one). */
static __always_inline int message_destination(__u64 writer, __u64 msg, struct go_string *topic)
{
	if (off_writer_topic != GOTEL_OFFSET_ABSENT &&
	    !bpf_probe_read_user(topic, sizeof(*topic), (void *)(writer + off_writer_topic)) &&
	    topic->len > 0)
		return 1;
	return message_topic(msg, topic) && topic->len > 0;
}

static __always_inline void record_identities(__u64 writer, __u64 msgs, __u64 count,
					      const struct span_context *sc)
{
	struct go_string topic = {};
	__u64 stride, identity;

	if (off_message_time == GOTEL_OFFSET_ABSENT)
		return;
	stride = off_message_time + GO_TIME_SIZE;
	for (__u32 i = 0; i < KAFKA_CORRELATED_MESSAGES; i++) {
		__u64 msg = msgs + i * stride;

		if (i >= count)
			break;
		if (!message_destination(writer, msg, &topic))
			continue;
		identity = message_identity_of(msg, &topic);
		if (identity)
			bpf_map_update_elem(&node_message_contexts, &identity, sc, BPF_ANY);
	}
}

SEC("uprobe")
int write_messages_entry(struct pt_regs *ctx)
{
	/* (w *Writer, ctx context.Context, msgs []Message): the slice's array and length. */
	__u64 msgs = GO_PARAM4(ctx), count = GO_PARAM5(ctx);
	struct kafka_call *call;
	struct call_key key = {};

	if (!msgs || (__s64)count <= 0)
		return 0;
	if (!start_call(ctx, &key, KAFKA_WRITE, msgs, count))
		return 0;
	call = bpf_map_lookup_elem(&kafka_calls, &key);
	if (call)
		record_identities(call->client, msgs, count, &call->sc);
	return 0;
}

SEC("uprobe")
int write_messages_return(struct pt_regs *ctx)
{
	struct go_string topic = {};
	struct kafka_call *call;
	struct kafka_event *e;
	struct call_key key = {};
	struct go_bytes message_key = {};

	if (!call_key(ctx, &key))
		return 0;
	call = bpf_map_lookup_elem(&kafka_calls, &key);
	if (!call || call->kind != KAFKA_WRITE)
		return 0;
	if (!(call->sc.flags & TRACE_FLAG_SAMPLED))
		goto done;
	e = new_event(call);
	if (!e)
		goto done;
	e->trace_flags = call->sc.flags;
	__builtin_memcpy(e->trace_id, call->sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, call->sc.span_id, sizeof(e->span_id));
	__builtin_memcpy(e->parent_span_id, call->parent_span_id, sizeof(e->parent_span_id));
	e->message_count = call->count;
	e->error_type = GO_PARAM1(ctx); /* the error's type word */
	/* The first message names the destination (and the key of a single message). */
	if (message_destination(call->client, call->msgs, &topic))
		e->topic_len = copy_go_string(&topic, e->topic, sizeof(e->topic));
	if (call->count == 1 && off_message_key != GOTEL_OFFSET_ABSENT &&
	    !bpf_probe_read_user(&message_key, sizeof(message_key),
				 (void *)(call->msgs + off_message_key)))
		e->key_len = read_go_bytes_n(&message_key, e->key, sizeof(e->key));
	submit_event(e);
done:
	bpf_map_delete_elem(&kafka_calls, &key);
	return 0;
}
