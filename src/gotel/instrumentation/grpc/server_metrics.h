/*
 * rpc.server.duration for every RPC, sampled or not: the full method, the
 * status code and how it was learned. Included by server.bpf.c.
 */
#pragma once

#include "../include/red_metrics.h"

/* red_key.outcome: the grpc_status_source, and this bit when grpc's own HTTP/2 server
 * read the stream (probe.py reads them). */
#define GRPC_SERVER_HTTP2_TRANSPORT 0x100

static __always_inline void record_server_metrics(struct server_rpc *rpc)
{
	struct red_key *key = red_key_begin();

	if (!key)
		return;
	key->code = rpc->status_code;
	key->outcome = rpc->status_source;
	if (bpf_map_lookup_elem(&incoming_streams, &rpc->key))
		key->outcome |= GRPC_SERVER_HTTP2_TRANSPORT;
	read_go_string_n(stream_common(rpc->stream), off_stream_method, key->name, RED_NAME_SIZE);
	red_record(key, bpf_ktime_get_boot_ns() - rpc->start_ns);
}
