/*
 * db.client.operation.duration for every go-redis command and batch, sampled
 * or not: the command's name (a batch counts under its kind), the server
 * address, the DB index, and the head of a returned error (probe.py keeps its
 * reply prefix only). Included by client.bpf.c.
 */
#pragma once

#include "../include/red_metrics.h"

/* red_key.outcome: the enum redis_call_kind, and this bit when the network is "unix". */
#define REDIS_METRIC_UNIX 0x100
/* red_key.port: 1 when the call returned an error (its text's head is in name). */
#define REDIS_METRIC_ERROR 1

static __always_inline void record_call_metrics(struct pt_regs *ctx, struct redis_call *call)
{
	struct red_key *key = red_key_begin();
	struct go_slice args = {};
	__u64 opt, error_type = GO_PARAM1(ctx), error_data = GO_PARAM2(ctx);
	char network[8] = {};

	if (!key)
		return;
	key->outcome = call->kind;
	/* A command's name: args[0], an interface{} whose data word points at a string. */
	if (call->kind == REDIS_COMMAND && call->cmds && off_base_cmd_args != GOTEL_OFFSET_ABSENT &&
	    !bpf_probe_read_user(&args, sizeof(args), (void *)(call->cmds + off_base_cmd_args)) &&
	    args.len > 0 && args.ptr)
		read_go_string_n(read_u64(args.ptr + 8), 0, key->word, RED_WORD_SIZE - 1);
	opt = read_ptr_field(call->client, off_base_client_opt);
	read_go_string(opt, off_options_addr, key->address);
	if (read_go_string(opt, off_options_network, network) == 4 && network[0] == 'u')
		key->outcome |= REDIS_METRIC_UNIX;
	key->code = read_ptr_field(opt, off_options_db);
	if (error_type) {
		/* The error's first bytes: enough for a reply's prefix, or to tell redis.Nil. */
		read_go_string_n(error_data, 0, key->name, RED_WORD_SIZE);
		key->port = REDIS_METRIC_ERROR;
	}
	red_record(key, bpf_ktime_get_boot_ns() - call->start_ns);
}
