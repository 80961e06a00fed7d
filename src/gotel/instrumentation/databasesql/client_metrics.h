/*
 * db.client.operation.duration for every database/sql call, sampled or not:
 * the operation (the query's first word, so that literal values never make a
 * series), the driver and the DSN it was opened with (probe.py takes the
 * system, server address and port from them; the DSN itself is never exported),
 * and whether the call failed. Included by client.bpf.c.
 */
#pragma once

#include "../include/red_metrics.h"

/* red_key.outcome: the enum sql_operation, and these bits (probe.py reads them). */
#define SQL_METRIC_FAILED 0x100
#define SQL_METRIC_DSN_CUT 0x200 /* the DSN is longer than the key holds */
#define SQL_METRIC_SCAN 32	 /* query bytes looked at for its first word */

static __always_inline int sql_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static __always_inline void record_call_metrics(struct sql_call *call, __u64 error_itab)
{
	struct red_key *key = red_key_begin();
	struct sql_db *info;
	__u64 db = call->db;
	__u32 n = 0;

	if (!key)
		return;
	key->code = system_hint;
	key->outcome = call->operation | (error_itab ? SQL_METRIC_FAILED : 0);
	for (__u32 i = 0; i < SQL_METRIC_SCAN && i < call->query_len; i++) {
		char c = call->query[i];

		if (sql_space(c) && !n)
			continue; /* leading white space */
		if (sql_space(c) || c == '(' || c == ';' || n >= RED_WORD_SIZE - 1)
			break;
		key->word[n++ & (RED_WORD_SIZE - 1)] = c;
	}
	info = db ? process_lookup(&sql_dbs, db) : 0;
	if (info) {
		red_copy(key->address, info->driver, info->driver_len, RED_ADDRESS_SIZE);
		red_copy(key->name, info->dsn, info->dsn_len, RED_NAME_SIZE);
		if (info->dsn_len > RED_NAME_SIZE)
			key->outcome |= SQL_METRIC_DSN_CUT;
	}
	red_record(key, bpf_ktime_get_boot_ns() - call->start_ns);
}
