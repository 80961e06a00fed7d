// SPDX-License-Identifier: GPL-2.0
/*
 * kafka-go consumer spans (github.com/segmentio/kafka-go): entry and every RET of
 * (*Reader).FetchMessage(ctx) (Message, error). One CONSUMER span per message returned, or
 * per error. ReadMessage is FetchMessage and then, in a group, a commit: its span is that of
 * the fetch inside it, so every message costs two uprobe hits whichever the program calls
 * (probing ReadMessage too would double that for the commit's duration alone).
 *
 * The returned Message does not fit the result registers: it is on the stack, just above the
 * return address (8(SP) at the RET); the error is in RAX, RBX.
 *
 * The span's remote context, read-only: the message's traceparent header when a producer's
 * SDK put one there, else the producer span gotel recorded under the message's identity
 * (include/message_context.h). It becomes the parent, or a link when the call already had a
 * parent in this process.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/traceparent.h"
#include "include/events.h"
#include "include/message_context.h"
#include "events.h"
#include "call.h"
#include "message.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 off_message_partition = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_message_offset = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_message_headers = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_reader_config = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_reader_config_group_id = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_header_key = GOTEL_OFFSET_ABSENT;
/* Header.Value, its last field (a []byte): the headers' stride is this offset + 24. */
volatile const __u64 off_header_value = GOTEL_OFFSET_ABSENT;

#define GO_SLICE_SIZE 24
#define RESULT_AT_RET 8 /* the Message result: above the return address */

static const char TRACEPARENT_KEY[] = "traceparent";
#define TRACEPARENT_KEY_LEN (sizeof(TRACEPARENT_KEY) - 1)

GOTEL_EVENT_TYPE(kafka_event);

static __always_inline int same_bytes(const char *a, const char *b, __u32 n)
{
	for (__u32 i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* A traceparent header among the message's first headers; 1 and sc filled when valid. */
static __always_inline int header_context(__u64 msg, struct span_context *sc)
{
	struct go_bytes headers = {}, value = {};
	struct go_string name = {};
	char key[TRACEPARENT_KEY_LEN];
	__u8 text[TRACEPARENT_LEN];
	__u64 stride;

	if (off_message_headers == GOTEL_OFFSET_ABSENT || off_header_key == GOTEL_OFFSET_ABSENT ||
	    off_header_value == GOTEL_OFFSET_ABSENT)
		return 0;
	if (bpf_probe_read_user(&headers, sizeof(headers), (void *)(msg + off_message_headers)))
		return 0;
	if (!headers.ptr || headers.len <= 0)
		return 0;
	stride = off_header_value + GO_SLICE_SIZE;
	for (__u32 i = 0; i < KAFKA_HEADERS_SCANNED; i++) {
		__u64 header = headers.ptr + i * stride;

		if (i >= headers.len)
			break;
		if (bpf_probe_read_user(&name, sizeof(name), (void *)(header + off_header_key)))
			return 0;
		if (name.len != TRACEPARENT_KEY_LEN || !name.ptr)
			continue;
		if (bpf_probe_read_user(key, sizeof(key), (void *)name.ptr))
			continue;
		if (!same_bytes(key, TRACEPARENT_KEY, TRACEPARENT_KEY_LEN))
			continue;
		if (bpf_probe_read_user(&value, sizeof(value), (void *)(header + off_header_value)))
			return 0;
		if (value.len != TRACEPARENT_LEN || !value.ptr)
			return 0;
		if (bpf_probe_read_user(text, sizeof(text), (void *)value.ptr))
			return 0;
		return !parse_traceparent(text, sc);
	}
	return 0;
}

/* The remote context of the message at msg, and where it came from. */
static __always_inline enum kafka_context_source remote_context(__u64 msg,
							      const struct go_string *topic,
							      struct span_context *out)
{
	struct span_context *recorded;
	__u64 identity;

	if (header_context(msg, out))
		return KAFKA_CONTEXT_HEADER;
	identity = message_identity_of(msg, topic);
	if (!identity)
		return KAFKA_CONTEXT_NONE;
	recorded = bpf_map_lookup_elem(&node_message_contexts, &identity);
	if (!recorded)
		return KAFKA_CONTEXT_NONE;
	*out = *recorded;
	return KAFKA_CONTEXT_PRODUCER;
}

static __always_inline void enter(struct pt_regs *ctx)
{
	struct call_key key = {};

	start_call(ctx, &key, KAFKA_FETCH, 0, 0);
}

static __always_inline void leave(struct pt_regs *ctx)
{
	struct kafka_call *call;
	struct kafka_event *e;
	struct call_key key = {};
	struct go_string topic = {};
	struct go_bytes message_key = {};
	struct span_context remote = {}, sc;
	enum kafka_context_source source = KAFKA_CONTEXT_NONE;
	__u64 msg = ctx->rsp + RESULT_AT_RET, error_type = GO_PARAM1(ctx), reader;
	int local_parent;

	if (!call_key(ctx, &key))
		return;
	call = bpf_map_lookup_elem(&kafka_calls, &key);
	if (!call || call->kind != KAFKA_FETCH)
		return;
	sc = call->sc;
	local_parent = call->parent_span_id[0] | call->parent_span_id[1] |
		       call->parent_span_id[2] | call->parent_span_id[3] |
		       call->parent_span_id[4] | call->parent_span_id[5] |
		       call->parent_span_id[6] | call->parent_span_id[7];
	if (!error_type && message_topic(msg, &topic))
		source = remote_context(msg, &topic, &remote);
	/* A span with no parent in this process becomes the remote span's child: its ids and
	 * sampling are decided again (nothing has used them: no child starts in the call). */
	if (source != KAFKA_CONTEXT_NONE && !local_parent)
		span_start(&sc, &remote);
	if (!(sc.flags & TRACE_FLAG_SAMPLED))
		goto done;
	e = new_event(call);
	if (!e)
		goto done;
	e->trace_flags = sc.flags;
	e->context_source = source;
	__builtin_memcpy(e->trace_id, sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, sc.span_id, sizeof(e->span_id));
	if (source != KAFKA_CONTEXT_NONE && !local_parent) {
		__builtin_memcpy(e->parent_span_id, remote.span_id, sizeof(e->parent_span_id));
		e->remote_parent = 1;
	} else {
		__builtin_memcpy(e->parent_span_id, call->parent_span_id,
				 sizeof(e->parent_span_id));
		if (source != KAFKA_CONTEXT_NONE) {
			__builtin_memcpy(e->link_trace_id, remote.trace_id, sizeof(e->link_trace_id));
			__builtin_memcpy(e->link_span_id, remote.span_id, sizeof(e->link_span_id));
		}
	}
	e->error_type = error_type;
	reader = call->client;
	if (off_reader_config != GOTEL_OFFSET_ABSENT)
		e->group_len = read_go_string(reader + off_reader_config, off_reader_config_group_id,
					      e->group);
	if (!error_type) {
		e->topic_len = copy_go_string(&topic, e->topic, sizeof(e->topic));
		if (off_message_partition != GOTEL_OFFSET_ABSENT)
			e->partition = read_u64(msg + off_message_partition);
		if (off_message_offset != GOTEL_OFFSET_ABSENT)
			e->offset = read_u64(msg + off_message_offset);
		if (off_message_key != GOTEL_OFFSET_ABSENT &&
		    !bpf_probe_read_user(&message_key, sizeof(message_key),
					 (void *)(msg + off_message_key)))
			e->key_len = read_go_bytes_n(&message_key, e->key, sizeof(e->key));
	}
	submit_event(e);
done:
	bpf_map_delete_elem(&kafka_calls, &key);
}

SEC("uprobe")
int fetch_message_entry(struct pt_regs *ctx)
{
	enter(ctx);
	return 0;
}

SEC("uprobe")
int fetch_message_return(struct pt_regs *ctx)
{
	leave(ctx);
	return 0;
}
