/* In-flight kafka-go calls, keyed so that a stack move between entry and RET changes nothing. */
#pragma once

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "events.h"
#include "include/maps.h"

/*
 * g.stack.hi: runtime.g starts with stack{lo, hi} on every Go release, an offset the
 * compiler itself depends on (its stack-split prologues read g.stackguard0 right after).
 */
#define G_STACK_HI 8

struct call_key {
	__u32 tgid; /* first, as in every per-process key (process.h) */
	__u32 _pad;
	__u64 goid;
	__u64 depth; /* g.stack.hi - SP at entry, the same at the RET */
};

/* A produce or consume call in progress. */
struct kafka_call {
	__u64 start_ns;
	__u64 client; /* *Writer or *Reader */
	__u64 msgs;   /* producer: the []Message array */
	__u64 count;  /* producer: its length */
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
	enum kafka_call_kind kind;
	__u32 _pad;
};

GOTEL_LRU_HASH(kafka_calls, struct call_key, struct kafka_call, 16384);

static __always_inline int call_key(struct pt_regs *ctx, struct call_key *key)
{
	__u64 g = GO_G(ctx), hi;

	key->tgid = current_tgid();
	key->goid = goroutine_id(g);
	if (!key->goid)
		return 0;
	hi = read_u64(g + G_STACK_HI);
	key->depth = hi > ctx->rsp ? hi - ctx->rsp : 0;
	return 1;
}

/* Record a call at its entry; 0 when it was already recorded (restarted after the stack
 * grew) or cannot be keyed. Its span is a child of the context's or goroutine's span. */
static __always_inline int start_call(struct pt_regs *ctx, struct call_key *key,
				      enum kafka_call_kind kind, __u64 msgs, __u64 count)
{
	__u64 g = GO_G(ctx), client = GO_PARAM1(ctx), call_ctx = GO_PARAM3(ctx);
	struct kafka_call *seen, call = {};
	struct span_context parent = {};

	if (!call_key(ctx, key))
		return 0;
	seen = bpf_map_lookup_elem(&kafka_calls, key);
	if (seen && seen->client == client && seen->msgs == msgs && seen->kind == kind)
		return 0;
	call.start_ns = bpf_ktime_get_boot_ns();
	call.client = client;
	call.msgs = msgs;
	call.count = count;
	call.kind = kind;
	if (find_parent_span(call_ctx, g, key->goid, &parent)) {
		span_start(&call.sc, &parent);
		__builtin_memcpy(call.parent_span_id, parent.span_id, SPAN_ID_SIZE);
	} else {
		span_start(&call.sc, 0);
	}
	bpf_map_update_elem(&kafka_calls, key, &call, BPF_ANY);
	return 1;
}

static __always_inline struct kafka_event *new_event(const struct kafka_call *call)
{
	struct kafka_event *e = reserve_event(sizeof(*e));

	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->start_ns = call->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->pid = agent_pid();
	e->kind = call->kind;
	e->partition = -1;
	e->offset = -1;
	return e;
}
