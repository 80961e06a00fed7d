// SPDX-License-Identifier: GPL-2.0
/*
 * go-redis v9 client spans (github.com/redis/go-redis/v9), entry and every RET of:
 *
 *  - (*baseClient).process(ctx, cmd Cmder) error: one command, its retries included;
 *  - (*baseClient).processPipeline(ctx, cmds []Cmder) error: a pipeline;
 *  - (*baseClient).processTxPipeline(ctx, cmds []Cmder) error: MULTI, the commands, EXEC.
 *
 * Every client (plain, Conn, Tx, a cluster's or ring's node clients) ends in these, after
 * any user hooks. Two uprobe hits per command or batch.
 *
 * A new connection is set up (HELLO, SELECT, CLIENT SETINFO ...) inside the command that
 * needed it, through the same functions on the same goroutine: in-flight calls are keyed by
 * goroutine and by the call's depth in its stack, which moving the stack does not change.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/events.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 off_base_client_opt = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_options_network = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_options_addr = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_options_db = GOTEL_OFFSET_ABSENT;
/* Every command type (StringCmd, IntCmd, ...) embeds baseCmd as its first field. */
volatile const __u64 off_base_cmd_args = GOTEL_OFFSET_ABSENT;

/*
 * g.stack.hi: runtime.g starts with stack{lo, hi} on every Go release, an offset the
 * compiler itself depends on (its stack-split prologues read g.stackguard0 right after).
 */
#define G_STACK_HI 8
#define GO_IFACE_SIZE 16 /* an interface value: type word, data word */

struct call_key {
	__u32 tgid; /* first, as in every per-process key (process.h) */
	__u32 _pad;
	__u64 goid;
	__u64 depth; /* g.stack.hi - SP at entry, the same at the RET */
};

/* A command or batch in progress. */
struct redis_call {
	__u64 start_ns;
	__u64 client; /* *baseClient */
	__u64 cmds;   /* the command's data word, or the batch's []Cmder array */
	__u64 cmds_len;
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
	enum redis_call_kind kind;
	__u32 _pad;
};

GOTEL_LRU_HASH(redis_calls, struct call_key, struct redis_call, 16384);

GOTEL_EVENT_TYPE(redis_event);

struct go_slice {
	__u64 ptr;
	__s64 len;
	__s64 cap;
};

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

static __always_inline void start_call(struct pt_regs *ctx, enum redis_call_kind kind,
				       __u64 cmds, __u64 cmds_len)
{
	__u64 g = GO_G(ctx), client = GO_PARAM1(ctx), call_ctx = GO_PARAM3(ctx);
	struct redis_call *seen, call = {};
	struct span_context parent = {};
	struct call_key key = {};

	if (!call_key(ctx, &key))
		return;
	seen = bpf_map_lookup_elem(&redis_calls, &key);
	if (seen && seen->client == client && seen->cmds == cmds)
		return; /* restarted after a stack growth */

	call.start_ns = bpf_ktime_get_boot_ns();
	call.client = client;
	call.cmds = cmds;
	call.cmds_len = cmds_len;
	call.kind = kind;
	if (find_parent_span(call_ctx, g, key.goid, &parent)) {
		span_start(&call.sc, &parent);
		__builtin_memcpy(call.parent_span_id, parent.span_id, SPAN_ID_SIZE);
	} else {
		span_start(&call.sc, 0);
	}
	bpf_map_update_elem(&redis_calls, &key, &call, BPF_ANY);
}

/* Name and argument count of the command whose *XxxCmd is cmd, into slot `slot`. */
static __always_inline void read_command(struct redis_event *e, __u32 slot, __u64 cmd)
{
	struct go_slice args = {};
	__u64 name_word;

	if (!cmd || off_base_cmd_args == GOTEL_OFFSET_ABSENT || slot >= REDIS_BATCH_NAMES)
		return;
	if (bpf_probe_read_user(&args, sizeof(args), (void *)(cmd + off_base_cmd_args)))
		return;
	if (args.len <= 0 || !args.ptr)
		return;
	e->argcs[slot] = args.len > 0xffffffff ? 0xffffffff : (__u32)args.len;
	/* args[0] is an interface{} holding the name: its data word points at a string. */
	name_word = read_u64(args.ptr + 8);
	e->name_lens[slot] =
		read_go_string_n(name_word, 0, e->names + slot * REDIS_NAME_SIZE, REDIS_NAME_SIZE);
}

static __always_inline void read_batch(struct redis_event *e, __u64 cmds, __s64 len,
				       enum redis_call_kind kind)
{
	__s64 first = 0, count = len;

	if (kind == REDIS_TRANSACTION && len >= 2) {
		first = 1; /* MULTI and EXEC are the batch's frame, not its commands */
		count = len - 2;
	}
	e->batch_size = count > 0 ? count : 0;
	for (__u32 i = 0; i < REDIS_BATCH_NAMES; i++) {
		if (i >= count)
			break;
		read_command(e, i, read_u64(cmds + (first + i) * GO_IFACE_SIZE + 8));
	}
}

#include "client_metrics.h"
#include "include/maps.h"

static __always_inline void end_call(struct pt_regs *ctx)
{
	struct redis_call *call;
	struct redis_event *e;
	struct call_key key = {};
	__u64 opt, error_type, error_data;

	if (!call_key(ctx, &key))
		return;
	call = bpf_map_lookup_elem(&redis_calls, &key);
	if (!call)
		return;
	record_call_metrics(ctx, call);
	if (!(call->sc.flags & TRACE_FLAG_SAMPLED))
		goto done;
	/* Results: the error interface (type word, data word) in RAX, RBX. */
	error_type = GO_PARAM1(ctx);
	error_data = GO_PARAM2(ctx);
	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	__builtin_memset(e, 0, sizeof(*e));
	e->start_ns = call->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->pid = agent_pid();
	e->trace_flags = call->sc.flags;
	e->kind = call->kind;
	__builtin_memcpy(e->trace_id, call->sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, call->sc.span_id, sizeof(e->span_id));
	__builtin_memcpy(e->parent_span_id, call->parent_span_id, sizeof(e->parent_span_id));

	if (call->kind == REDIS_COMMAND)
		read_command(e, 0, call->cmds);
	else
		read_batch(e, call->cmds, call->cmds_len, call->kind);

	opt = read_ptr_field(call->client, off_base_client_opt);
	e->addr_len = read_go_string(opt, off_options_addr, e->addr);
	e->network_len = read_go_string(opt, off_options_network, e->network);
	e->db = read_ptr_field(opt, off_options_db);

	e->error_type = error_type;
	/*
	 * A reply error (proto.RedisError, a string type; redis.Nil is one) boxes its string
	 * header, so the data word points at it. Most other errors start with their message
	 * string too; userspace decides what the text is, and exports only a reply's prefix.
	 */
	if (error_type)
		e->error_len = read_go_string(error_data, 0, e->error);
	submit_event(e);
done:
	bpf_map_delete_elem(&redis_calls, &key);
}

SEC("uprobe")
int process_entry(struct pt_regs *ctx)
{
	/* (c *baseClient, ctx context.Context, cmd Cmder): cmd's data word is the 5th. */
	start_call(ctx, REDIS_COMMAND, GO_PARAM5(ctx), 0);
	return 0;
}

SEC("uprobe")
int pipeline_entry(struct pt_regs *ctx)
{
	/* (c *baseClient, ctx context.Context, cmds []Cmder): the slice's array and length. */
	start_call(ctx, REDIS_PIPELINE, GO_PARAM4(ctx), GO_PARAM5(ctx));
	return 0;
}

SEC("uprobe")
int tx_pipeline_entry(struct pt_regs *ctx)
{
	start_call(ctx, REDIS_TRANSACTION, GO_PARAM4(ctx), GO_PARAM5(ctx));
	return 0;
}

SEC("uprobe")
int call_return(struct pt_regs *ctx)
{
	end_call(ctx);
	return 0;
}
