/*
 * rpc.client.duration for every call, sampled or not: the full method, the
 * status code and how it was learned, and the target (server address). Included
 * by client.bpf.c after call_status.
 */
#pragma once

#include "../include/red_metrics.h"

static __always_inline void record_client_metrics(struct client_call *call, __u64 itab,
						  __u64 err, int eof_is_ok)
{
	struct red_key *key = red_key_begin();
	__u64 proto = 0;

	if (!key)
		return;
	key->outcome = call_status(itab, err, eof_is_ok, &key->code, &proto);
	red_copy(key->name, call->method, call->method_len, RED_NAME_SIZE);
	/* The authority grpc puts in :authority (host:port), else the dial target. */
	if (!read_go_string(call->cc, off_cc_authority, key->address))
		read_go_string(call->cc, off_cc_target, key->address);
	red_record(key, bpf_ktime_get_boot_ns() - call->start_ns);
}
