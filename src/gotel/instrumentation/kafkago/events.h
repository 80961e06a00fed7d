/* kafka-go events: the one definition of their layout; Python reads it from BTF. */
#pragma once

#include <linux/types.h>

#define KAFKA_TOPIC_SIZE 64 /* messaging.destination.name */
#define KAFKA_KEY_SIZE 64   /* messaging.kafka.message.key: longer keys are cut */
#define KAFKA_GROUP_SIZE 64 /* messaging.consumer.group.name */
/* A produce call's messages whose identities are recorded for consumers (see message.h). */
#define KAFKA_CORRELATED_MESSAGES 16
#define KAFKA_HEADERS_SCANNED 8 /* a consumed message's headers searched for a traceparent */

enum kafka_call_kind {
	KAFKA_WRITE = 0, /* (*Writer).WriteMessages: PRODUCER */
	KAFKA_FETCH = 1, /* (*Reader).FetchMessage (ReadMessage's too): CONSUMER */
};

/* Where a consumer span's remote context came from. */
enum kafka_context_source {
	KAFKA_CONTEXT_NONE = 0,
	KAFKA_CONTEXT_HEADER = 1,   /* the message's traceparent header (a producer's SDK) */
	KAFKA_CONTEXT_PRODUCER = 2, /* the producer span gotel recorded for this message */
};

/*
 * One finished produce or consume call. A consumer span whose call already had a parent in
 * its process keeps it and gets the remote context as link_trace_id/link_span_id instead.
 */
struct kafka_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u64 error_type; /* the error's itab when one was returned, else 0 */
	__s64 partition;  /* consumer: the message's partition; producer: -1 */
	__s64 offset;     /* consumer: the message's offset */
	__u64 message_count; /* producer: the messages of the call */
	__u32 pid;
	__u32 trace_flags;
	enum kafka_call_kind kind;
	enum kafka_context_source context_source;
	__u32 remote_parent; /* 1: parent_span_id is the remote span */
	__u32 topic_len;
	__u32 key_len;
	__u32 group_len;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	__u8 link_trace_id[16]; /* zero: no link */
	__u8 link_span_id[8];
	char topic[KAFKA_TOPIC_SIZE];
	char key[KAFKA_KEY_SIZE];
	char group[KAFKA_GROUP_SIZE];
};
